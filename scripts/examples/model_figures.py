"""Makes the README's figures of the conditioned models with the built `diffuse` binary:
super-resolution with the bundled SR3 model, and (when their folders are given) inpainting
with an inpainting model and text-to-image with a text-conditional model.

  python3 scripts/examples/model_figures.py [--diffuse .build/release/diffuse] [--out docs] [--threads N]
      [--inpaint-model DIR] [--text-model DIR]

docs/upscale.png, per row: a Fashion-MNIST test image, its 7x7 version (shown 4x, nearest),
bicubic x4 (Catmull-Rom, a = -0.5), then three SR3 upscalings (seeds 0-2).
docs/inpaint-model.png (--inpaint-model), per row: the test image, the masked region grey,
three inpaintings (seeds 0-2, 20 steps of the folder's sampler).
docs/text-to-image.png (--text-model), per row: a prompt's four samples (guidance 3).
Inputs land in docs/examples/. Only the standard library.
"""
import argparse, gzip, os, shutil, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from editing_figures import write_png, read_gray_png, row_figure, stack

def cubic(t, a=-0.5):
    t = abs(t)
    if t <= 1: return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    if t < 2: return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
    return 0.0

def bicubic(img, scale):
    """Separable bicubic resize (pixel centres aligned, edges clamped), 8-bit."""
    h, w = len(img), len(img[0]); H, W = h * scale, w * scale
    def resample(line, n_out):
        n = len(line); out = []
        for i in range(n_out):
            x = (i + 0.5) / scale - 0.5; x0 = int(x // 1)
            acc = sum(line[min(max(x0 + k, 0), n - 1)] * cubic(x - (x0 + k)) for k in range(-1, 3))
            out.append(acc)
        return out
    rows = [resample(list(r), W) for r in img]
    cols = [resample([rows[y][x] for y in range(h)], H) for x in range(W)]
    return [bytes(min(255, max(0, int(round(cols[x][y])))) for x in range(W)) for y in range(H)]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--diffuse', default='.build/release/diffuse')
    ap.add_argument('--out', default='docs')
    ap.add_argument('--threads', default=None, help='passed to diffuse (1 on a busy machine)')
    ap.add_argument('--inpaint-model', default=None)
    ap.add_argument('--text-model', default=None)
    args = ap.parse_args()
    threads = ['--threads', args.threads] if args.threads else []
    ex = os.path.join(args.out, 'examples'); os.makedirs(ex, exist_ok=True)
    images = gzip.open('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz').read()[16:]
    def test_image(i): return [images[i * 784 + y * 28:i * 784 + (y + 1) * 28] for y in range(28)]
    def run(cmd, outdir):
        subprocess.run([args.diffuse] + cmd + ['--out-dir', outdir] + threads, check=True, stdout=subprocess.DEVNULL)
        return [read_gray_png(os.path.join(outdir, f))[2] for f in sorted(os.listdir(outdir)) if f.endswith('.png')]
    written = []
    rows = []
    for i in [0, 1, 8, 12]:                       # an ankle boot, a pullover, a sandal, a sneaker
        img = test_image(i)
        low = [bytes(int(round(sum(img[4 * y + dy][4 * x + dx] for dy in range(4) for dx in range(4)) / 16)) for x in range(7))
               for y in range(7)]
        src = os.path.join(ex, f'low-{i}.png'); write_png(src, 7, 7, low)
        nearest = [bytes(low[y // 4][x // 4] for x in range(28)) for y in range(28)]
        ups = [run(['upscale', '--image', src, '--scale', '4', '--seed', str(s), '--batch', '1'], os.path.join(ex, f'up-{i}-{s}'))[0]
               for s in range(3)]
        rows.append(row_figure(None, [img, nearest, bicubic(low, 4)] + ups))
    stack(os.path.join(args.out, 'upscale.png'), rows); written.append('upscale.png')
    if args.inpaint_model:
        rows = []
        masks = {'right': lambda x, y: x >= 14, 'centre': lambda x, y: 8 <= x < 20 and 8 <= y < 20, 'top': lambda x, y: y < 12}
        for (name, m), i in zip(masks.items(), [0, 2, 7]):
            img = test_image(i)
            src = os.path.join(ex, f'test-{i}.png'); write_png(src, 28, 28, img)
            mpath = os.path.join(ex, f'mask-{name}.png')
            write_png(mpath, 28, 28, [bytes(255 if m(x, y) else 0 for x in range(28)) for y in range(28)])
            outs = [run(['inpaint', '--model', args.inpaint_model, '--image', src, '--mask', mpath, '--steps', '20', '--sampler', 'dpm++2m-sde',
                         '--seed', str(s)], os.path.join(ex, f'inpaint-model-{i}-{s}'))[0] for s in range(3)]
            masked = [bytes(128 if m(x, y) else img[y][x] for x in range(28)) for y in range(28)]
            rows.append(row_figure(None, [img, masked] + outs))
        stack(os.path.join(args.out, 'inpaint-model.png'), rows); written.append('inpaint-model.png')
    if args.text_model:
        rows = []
        for k, prompt in enumerate(['a sneaker', 'a photo of a trouser', 'a drawing of a bag', 'a picture of an ankle boot', 'a dress']):
            outs = run(['generate', '--model', args.text_model, '--prompt', prompt, '--batch', '4', '--seed', str(k)],
                       os.path.join(ex, f'generate-{k}'))
            rows.append(row_figure(None, outs))
        stack(os.path.join(args.out, 'text-to-image.png'), rows); written.append('text-to-image.png')
    for d in os.listdir(ex):                      # the runs' own outputs: only the figures are kept
        if os.path.isdir(os.path.join(ex, d)): shutil.rmtree(os.path.join(ex, d))
    print('wrote', ', '.join(os.path.join(args.out, w) for w in written))

if __name__ == '__main__':
    main()
