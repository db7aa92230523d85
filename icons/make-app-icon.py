# Register Sync's app icon: a blue rounded square with two white arrows chasing each other (sync).
# Draws the 1024 px master; Tauri makes every size and format from it:
#   python3 icons/make-app-icon.py /tmp/app-icon.png   (needs Pillow)
#   cargo tauri icon /tmp/app-icon.png -o /tmp/icons   then copy 32x32, 64x64, 128x128,
#   128x128@2x, icon.png, icon.icns and icon.ico into icons/ (the tray-*.png are drawn apart).
from PIL import Image, ImageDraw
import math
import sys
S = 1024
scale = 4
W = S * scale
img = Image.new("RGBA", (W, W), (0, 0, 0, 0))
d = ImageDraw.Draw(img)
pad = 64 * scale
d.rounded_rectangle([pad, pad, W - pad, W - pad], radius=200 * scale, fill=(11, 99, 206, 255))
cx = cy = W / 2
r = 270 * scale
width = 88 * scale
box = [cx - r, cy - r, cx + r, cy + r]
white = (255, 255, 255, 255)
# Two arcs, each with an arrow head at its end.
for start, end in ((200, 340), (20, 160)):
    d.arc(box, start, end, fill=white, width=width)
    a = math.radians(end)
    # The arc's end point on the stroke's middle radius.
    rm = r - width / 2
    ex, ey = cx + rm * math.cos(a), cy + rm * math.sin(a)
    # Tangent direction (clockwise in screen coordinates).
    tx, ty = -math.sin(a), math.cos(a)
    nx, ny = math.cos(a), math.sin(a)
    head = 120 * scale
    tip = (ex + tx * head, ey + ty * head)
    left = (ex + nx * head * 0.95, ey + ny * head * 0.95)
    right = (ex - nx * head * 0.95, ey - ny * head * 0.95)
    d.polygon([tip, left, right], fill=white)
img = img.resize((S, S), Image.LANCZOS)
img.save(sys.argv[1] if len(sys.argv) > 1 else "app-icon.png")
