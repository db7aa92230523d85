//! The catalog: everything Back Office syncs to the registers of a site — the "menu" a manager
//! edits. A sync delivers the whole catalog at a revision, the same as a manual sync on the
//! register.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A site's menu and settings, as a register applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(default)]
    pub categories: Vec<Category>,
    #[serde(default)]
    pub products: Vec<Product>,
    /// Register settings (receipt footer, tax mode, …) as plain key/value pairs.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Chosen by Back Office users; unique within the catalog; not blank.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub id: String,
    /// Not blank.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Chosen by Back Office users (often a PLU); unique within the catalog; not blank.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub id: String,
    /// Not blank.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub name: String,
    /// Price in the smallest unit of the venue's currency (cents), so no rounding ever happens.
    /// A whole number; `6390.0` is read as 6390.
    #[serde(deserialize_with = "crate::whole::number")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub price_cents: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<String>,
}

/// A partial change to a catalog. Removals are applied before upserts, so an edit that removes
/// and re-adds an id replaces it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CatalogEdit {
    /// When given, the edit is refused with 409 unless the catalog is still at this revision:
    /// two managers editing at once never silently overwrite each other.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::optional"
    )]
    pub expected_revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upsert_categories: Vec<Category>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_products: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upsert_products: Vec<Product>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_settings: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_settings: BTreeMap<String, String>,
}

impl CatalogEdit {
    pub fn is_empty(&self) -> bool {
        self.remove_categories.is_empty()
            && self.upsert_categories.is_empty()
            && self.remove_products.is_empty()
            && self.upsert_products.is_empty()
            && self.remove_settings.is_empty()
            && self.set_settings.is_empty()
    }
}

/// Why a catalog cannot be accepted; `field` is the JSON path a user can fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProblem {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for CatalogProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl Catalog {
    /// Applies an edit, returning the new catalog. The result is not validated; call
    /// [`Catalog::validate`] on it.
    ///
    /// Linear in the sizes of the catalog and the edit (a menu of 20,000 products and an edit
    /// of 150,000 removals is a few milliseconds, not minutes).
    pub fn edited(&self, edit: &CatalogEdit) -> Catalog {
        use std::collections::{HashMap, HashSet};
        let mut next = self.clone();
        let removed: HashSet<&str> = edit.remove_categories.iter().map(String::as_str).collect();
        next.categories.retain(|c| !removed.contains(c.id.as_str()));
        let removed: HashSet<&str> = edit.remove_products.iter().map(String::as_str).collect();
        next.products.retain(|p| !removed.contains(p.id.as_str()));
        for key in &edit.remove_settings {
            next.settings.remove(key);
        }
        let mut at: HashMap<String, usize> = next
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        for category in &edit.upsert_categories {
            match at.get(&category.id) {
                Some(&i) => next.categories[i] = category.clone(),
                None => {
                    at.insert(category.id.clone(), next.categories.len());
                    next.categories.push(category.clone());
                }
            }
        }
        let mut at: HashMap<String, usize> = next
            .products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        for product in &edit.upsert_products {
            match at.get(&product.id) {
                Some(&i) => next.products[i] = product.clone(),
                None => {
                    at.insert(product.id.clone(), next.products.len());
                    next.products.push(product.clone());
                }
            }
        }
        next.settings.extend(edit.set_settings.clone());
        next
    }

    /// Checks what a register relies on: ids present and unique, names present, prices not
    /// negative, every product's category known. Reports the first problem found.
    pub fn validate(&self) -> Result<(), CatalogProblem> {
        let problem = |field: String, message: &str| {
            Err(CatalogProblem {
                field,
                message: message.to_owned(),
            })
        };
        let mut category_ids = std::collections::HashSet::new();
        for (i, category) in self.categories.iter().enumerate() {
            if category.id.trim().is_empty() {
                return problem(format!("categories[{i}].id"), "must not be empty");
            }
            if category.name.trim().is_empty() {
                return problem(format!("categories[{i}].name"), "must not be empty");
            }
            if !category_ids.insert(category.id.as_str()) {
                return problem(
                    format!("categories[{i}].id"),
                    &format!("`{}` is used by another category", category.id),
                );
            }
        }
        let mut product_ids = std::collections::HashSet::new();
        for (i, product) in self.products.iter().enumerate() {
            if product.id.trim().is_empty() {
                return problem(format!("products[{i}].id"), "must not be empty");
            }
            if product.name.trim().is_empty() {
                return problem(format!("products[{i}].name"), "must not be empty");
            }
            if product.price_cents < 0 {
                return problem(format!("products[{i}].price_cents"), "must not be negative");
            }
            if !product_ids.insert(product.id.as_str()) {
                return problem(
                    format!("products[{i}].id"),
                    &format!("`{}` is used by another product", product.id),
                );
            }
            if let Some(category_id) = &product.category_id
                && !category_ids.contains(category_id.as_str())
            {
                return problem(
                    format!("products[{i}].category_id"),
                    &format!("no category has the id `{category_id}`"),
                );
            }
        }
        for key in self.settings.keys() {
            if key.trim().is_empty() {
                return problem("settings".to_owned(), "a setting name must not be empty");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, price_cents: i64, category_id: Option<&str>) -> Product {
        Product {
            id: id.into(),
            name: format!("Product {id}"),
            price_cents,
            category_id: category_id.map(Into::into),
        }
    }

    fn drinks() -> Catalog {
        Catalog {
            categories: vec![Category {
                id: "drinks".into(),
                name: "Drinks".into(),
            }],
            products: vec![product("1", 450, Some("drinks")), product("2", 500, None)],
            settings: [("receipt_footer".to_owned(), "Thanks!".to_owned())].into(),
        }
    }

    #[test]
    fn edit_removes_then_upserts() {
        let edit = CatalogEdit {
            remove_products: vec!["2".into()],
            upsert_products: vec![product("1", 480, Some("drinks")), product("3", 100, None)],
            set_settings: [("tax".to_owned(), "incl".to_owned())].into(),
            remove_settings: vec!["receipt_footer".into()],
            ..Default::default()
        };
        let next = drinks().edited(&edit);
        let prices: Vec<_> = next
            .products
            .iter()
            .map(|p| (p.id.as_str(), p.price_cents))
            .collect();
        assert_eq!(prices, [("1", 480), ("3", 100)]);
        assert_eq!(next.settings.len(), 1);
        assert_eq!(next.settings["tax"], "incl");
    }

    #[test]
    fn validation_names_the_field() {
        let mut catalog = drinks();
        catalog.products.push(product("1", 10, None));
        assert_eq!(catalog.validate().unwrap_err().field, "products[2].id");

        let mut catalog = drinks();
        catalog.products[1].price_cents = -1;
        assert_eq!(
            catalog.validate().unwrap_err().field,
            "products[1].price_cents"
        );

        let mut catalog = drinks();
        catalog.products[0].category_id = Some("food".into());
        let problem = catalog.validate().unwrap_err();
        assert_eq!(problem.field, "products[0].category_id");
        assert!(problem.message.contains("food"));

        assert_eq!(drinks().validate(), Ok(()));
    }

    #[test]
    fn removing_a_category_still_used_is_caught() {
        let edit = CatalogEdit {
            remove_categories: vec!["drinks".into()],
            ..Default::default()
        };
        let problem = drinks().edited(&edit).validate().unwrap_err();
        assert_eq!(problem.field, "products[0].category_id");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Catalog>(r#"{"prodcts": []}"#).unwrap_err();
        assert!(err.to_string().contains("prodcts"), "{err}");
    }
}

/// What changed in a menu from one revision to another, in the names a manager knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MenuDiff {
    /// Products in the newer menu only.
    pub added: Vec<String>,
    /// Products in both whose name, price or category differ (the newer name).
    pub changed: Vec<String>,
    /// Products in the older menu only.
    pub removed: Vec<String>,
    /// Register settings added, changed or removed (their keys).
    pub settings: Vec<String>,
    /// Categories added, renamed or removed (the newer name; a removed one's last name).
    /// Absent from Back Offices before it was reported.
    #[serde(default)]
    pub categories: Vec<String>,
}

impl MenuDiff {
    /// From `old` to `new`; products are matched by id, each list sorted by name.
    pub fn between(old: &Catalog, new: &Catalog) -> MenuDiff {
        use std::collections::BTreeMap as Map;
        let before: Map<&str, &Product> = old.products.iter().map(|p| (p.id.as_str(), p)).collect();
        let after: Map<&str, &Product> = new.products.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut diff = MenuDiff::default();
        for (id, product) in &after {
            match before.get(id) {
                None => diff.added.push(product.name.clone()),
                Some(was) if was != product => diff.changed.push(product.name.clone()),
                Some(_) => {}
            }
        }
        for (id, product) in &before {
            if !after.contains_key(id) {
                diff.removed.push(product.name.clone());
            }
        }
        let keys: std::collections::BTreeSet<&String> =
            old.settings.keys().chain(new.settings.keys()).collect();
        diff.settings = keys
            .into_iter()
            .filter(|key| old.settings.get(*key) != new.settings.get(*key))
            .cloned()
            .collect();
        let groups_before: Map<&str, &Category> =
            old.categories.iter().map(|c| (c.id.as_str(), c)).collect();
        let groups_after: Map<&str, &Category> =
            new.categories.iter().map(|c| (c.id.as_str(), c)).collect();
        for (id, category) in &groups_after {
            if groups_before.get(id) != Some(category) {
                diff.categories.push(category.name.clone());
            }
        }
        for (id, category) in &groups_before {
            if !groups_after.contains_key(id) {
                diff.categories.push(category.name.clone());
            }
        }
        for list in [
            &mut diff.added,
            &mut diff.changed,
            &mut diff.removed,
            &mut diff.categories,
        ] {
            list.sort();
        }
        diff
    }
}

#[cfg(test)]
mod diff_tests {
    use super::*;

    fn product(id: &str, name: &str, price_cents: i64) -> Product {
        Product {
            id: id.into(),
            name: name.into(),
            price_cents,
            category_id: None,
        }
    }

    #[test]
    fn a_diff_names_what_was_added_changed_and_removed() {
        let old = Catalog {
            products: vec![
                product("1", "Latte", 450),
                product("2", "Mocha", 500),
                product("3", "Tea", 300),
            ],
            settings: [("footer".to_owned(), "Thanks".to_owned())].into(),
            ..Catalog::default()
        };
        let new = Catalog {
            products: vec![
                product("1", "Latte", 480),
                product("3", "Tea", 300),
                product("4", "Flat white", 460),
            ],
            settings: [
                ("footer".to_owned(), "See you".to_owned()),
                ("tax".to_owned(), "incl".to_owned()),
            ]
            .into(),
            ..Catalog::default()
        };
        let diff = MenuDiff::between(&old, &new);
        assert_eq!(diff.added, ["Flat white"]);
        assert_eq!(diff.changed, ["Latte"]);
        assert_eq!(diff.removed, ["Mocha"]);
        assert_eq!(diff.settings, ["footer", "tax"]);
        assert_eq!(MenuDiff::between(&new, &new), MenuDiff::default());
    }

    #[test]
    fn a_diff_names_categories_added_renamed_and_removed() {
        let category = |id: &str, name: &str| Category {
            id: id.into(),
            name: name.into(),
        };
        let old = Catalog {
            categories: vec![category("d", "Drinks"), category("f", "Food")],
            ..Catalog::default()
        };
        let new = Catalog {
            categories: vec![category("d", "Hot drinks"), category("s", "Specials")],
            ..Catalog::default()
        };
        let diff = MenuDiff::between(&old, &new);
        assert_eq!(diff.categories, ["Food", "Hot drinks", "Specials"]);
        assert!(diff.added.is_empty() && diff.changed.is_empty() && diff.removed.is_empty());
        assert_eq!(MenuDiff::between(&new, &new), MenuDiff::default());
    }
}
