"""Makes the README's image-editing figures with the built `diffuse` binary and the bundled
Fashion-MNIST model: inpainting (RePaint) and image-to-image (SDEdit) on real test images.

  python3 scripts/examples/editing_figures.py [--diffuse .build/release/diffuse] [--out docs] [--threads N]

Writes docs/inpaint.png (per row: the test image, the image with the masked region grey,
four inpaintings with seeds 0-3) and docs/img2img.png (per row: the test image, then the
result at strengths 0.2, 0.3, 0.4 and 0.5), each scaled 3x, plus the inputs it made
(docs/examples/*.png) so that the commands can be repeated. Only the standard library.
"""
import argparse, gzip, os, shutil, struct, subprocess, sys, zlib

def write_png(path, w, h, rows):
    raw = b''.join(b'\x00' + bytes(r) for r in rows)
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    data = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)) \
        + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')
    open(path + '.tmp', 'wb').write(data)
    os.replace(path + '.tmp', path)

def read_gray_png(path):
    b = open(path, 'rb').read(); i = 8; idat = b''
    while i < len(b):
        n = struct.unpack('>I', b[i:i + 4])[0]; t = b[i + 4:i + 8]; d = b[i + 8:i + 8 + n]; i += 12 + n
        if t == b'IHDR': w, h, depth, ctype = struct.unpack('>IIBB', d[:10])
        if t == b'IDAT': idat += d
    assert depth == 8 and ctype == 0, f'{path}: expected an 8-bit gray PNG'
    raw = zlib.decompress(idat); rows = []; prev = bytearray(w)
    for y in range(h):
        f = raw[y * (w + 1)]; line = bytearray(raw[y * (w + 1) + 1:(y + 1) * (w + 1)])
        for x in range(w):
            a = line[x - 1] if x else 0; up = prev[x]; c = prev[x - 1] if x else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + up) & 255
            elif f == 3: line[x] = (line[x] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c; pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        rows.append(bytes(line)); prev = line
    return w, h, rows

def row_figure(path, tiles, scale=3, gap=4):
    """Tiles (lists of rows of 28 bytes) side by side, scaled, on a white background."""
    h = len(tiles[0]); w = len(tiles[0][0])
    W = len(tiles) * (w * scale + gap) - gap
    out = []
    for y in range(h * scale):
        line = bytearray()
        for k, t in enumerate(tiles):
            line += bytes(t[y // scale][x // scale] for x in range(w * scale))
            if k < len(tiles) - 1: line += b'\xff' * gap
        out.append(bytes(line))
    return W, h * scale, out

def stack(path, figures, gap=4):
    W = max(f[0] for f in figures); rows = []
    for k, (w, h, r) in enumerate(figures):
        rows += [line + b'\xff' * (W - w) for line in r]
        if k < len(figures) - 1: rows += [b'\xff' * W] * gap
    write_png(path, W, len(rows), rows)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--diffuse', default='.build/release/diffuse')
    ap.add_argument('--out', default='docs')
    ap.add_argument('--threads', default=None, help='passed to diffuse (1 on a busy machine)')
    args = ap.parse_args()
    threads = ['--threads', args.threads] if args.threads else []
    ex = os.path.join(args.out, 'examples'); os.makedirs(ex, exist_ok=True)
    images = gzip.open('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz').read()[16:]
    picks = [0, 2, 7]             # an ankle boot, a trouser, a shirt
    masks = {'right': lambda x, y: x >= 14, 'centre': lambda x, y: 8 <= x < 20 and 8 <= y < 20,
             'top': lambda x, y: y < 12}
    inpaint_rows, img2img_rows = [], []
    for k, i in enumerate(picks):
        img = [images[i * 784 + y * 28:i * 784 + (y + 1) * 28] for y in range(28)]
        src = os.path.join(ex, f'test-{i}.png'); write_png(src, 28, 28, img)
        name, m = list(masks.items())[k]
        mask = [bytes(255 if m(x, y) else 0 for x in range(28)) for y in range(28)]
        mpath = os.path.join(ex, f'mask-{name}.png'); write_png(mpath, 28, 28, mask)
        outdir = os.path.join(ex, f'inpaint-{i}')
        tiles = []
        for seed in range(4):
            subprocess.run([args.diffuse, 'inpaint', '--image', src, '--mask', mpath, '--seed', str(seed),
                            '--out-dir', outdir + f'-{seed}'] + threads, check=True, stdout=subprocess.DEVNULL)
            tiles.append(read_gray_png(outdir + f'-{seed}/sample-0000.png')[2])
        masked = [bytes(128 if m(x, y) else img[y][x] for x in range(28)) for y in range(28)]
        inpaint_rows.append(row_figure(None, [img, masked] + tiles))
        tiles = []
        for strength in ['0.2', '0.3', '0.4', '0.5']:
            d = os.path.join(ex, f'img2img-{i}-{strength}')
            subprocess.run([args.diffuse, 'sample', '--init-image', src, '--strength', strength, '--batch', '1',
                            '--steps', '50', '--out-dir', d] + threads, check=True, stdout=subprocess.DEVNULL)
            tiles.append(read_gray_png(d + '/sample-0000.png')[2])
        img2img_rows.append(row_figure(None, [img] + tiles))
    for d in os.listdir(ex):                      # the runs' own outputs: only the figures are kept
        if os.path.isdir(os.path.join(ex, d)): shutil.rmtree(os.path.join(ex, d))
    stack(os.path.join(args.out, 'inpaint.png'), inpaint_rows)
    stack(os.path.join(args.out, 'img2img.png'), img2img_rows)
    print('wrote', os.path.join(args.out, 'inpaint.png'), 'and', os.path.join(args.out, 'img2img.png'))

if __name__ == '__main__':
    main()
