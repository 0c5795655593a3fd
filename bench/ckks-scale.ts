/**
 * CKKS at scale: one row per model, from the built CLI in dist/ (build with `npx tsc -p tsconfig.json`).
 *
 * Per model: `pic compile MODEL --backend ckks [--approx A --calib C] -o P.json` (wall time and peak
 * RSS of the child process), then `pic run P.json --input X --output Y --refresh client --json` on
 * K images (one image per inference; throughput is 1 / latency). Columns: compile seconds and peak
 * RSS, N, primes (levels between refreshes), depth, refreshes, rotation keys and their bytes, peak
 * heap predicted (plan) and measured (node-seal's heap high-water mark), estimated and measured
 * evaluation per image and their ratio, client-aided refresh traffic per image, and the outputs:
 * top-1 agreement with and bits of precision against the compiled model in float64 (`pic run`'s own
 * plaintext check) and against PyTorch's logits (ref_NAME.npy); precision is
 * -log2(max error / max(1, max |logit|)).
 *
 * References per image, for the same networks: ACE (an ONNX-to-CKKS compiler with bootstrapping)
 * runs ResNet-20 in 1,454 s on one thread; TenSEAL's MNIST tutorial takes 2 s; the ratio column
 * divides by ACE's figure for the ResNet-20 rows and by cryptonets28 measured in this run otherwise.
 *
 *   npx vite-node bench/ckks-scale.ts [-- --models a,b --images K --json]
 *     --models   resnet20_aespa, pkn, resnet20 (chebyshev:2; hermite:2 diverges and is refused at compile time), cryptonets28, cnn_square, cnn_square_b8
 *                (8 images per inference; estimated and measured columns are per image) (default: all)
 *     --images   images per model (default 5)
 *     --json     also write bench/out/ckks-scale.json
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { encodeNpy, readNpy } from '../compiler/npy.js'
import type { Tensor } from '../ir/tensor.js'
import { top1Agreement } from '../passes/ola.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin/pic.js')
const FIX = path.join(ROOT, 'test/fixtures')
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined
const ACE_RESNET20_S = 1454

interface ModelSpec {
  name: string
  dir: string
  onnx: string
  approx?: string
  ref?: string
  /** Images per inference (pic compile --batch K). */
  batch?: number
}
const MODELS: Record<string, ModelSpec> = {
  resnet20_aespa: { name: 'resnet20_aespa', dir: 'fmnist32', onnx: 'resnet20_aespa.onnx', ref: 'ref_resnet20_aespa.npy' },
  pkn: { name: 'pkn', dir: 'fmnist32', onnx: 'pkn.onnx', ref: 'ref_pkn.npy' },
  resnet20: { name: 'resnet20 chebyshev:2', dir: 'fmnist32', onnx: 'resnet20.onnx', approx: 'chebyshev:2' },
  cryptonets28: { name: 'cryptonets28', dir: 'digits28', onnx: 'cryptonets28.onnx' },
  cnn_square: { name: 'cnn_square', dir: 'digits', onnx: 'cnn_square.onnx' },
  cnn_square_b8: { name: 'cnn_square --batch 8', dir: 'digits', onnx: 'cnn_square.onnx', batch: 8 },
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

/** Run the CLI; wall ms and peak RSS (bytes, from /usr/bin/time -f %M when installed). */
function pic(args: string[]): { ms: number; rssBytes?: number; stdout: string } {
  const rssFile = path.join(tmpdir(), `pic-rss-${process.pid}`)
  const cmd = TIME ? TIME : process.execPath
  const full = TIME ? ['-f', '%M', '-o', rssFile, process.execPath, BIN, ...args] : [BIN, ...args]
  const t0 = performance.now()
  const r = spawnSync(cmd, full, { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'inherit'] })
  const ms = performance.now() - t0
  if (r.status !== 0) throw new Error(`pic ${args.join(' ')} exited ${r.status}`)
  const rssBytes = TIME && existsSync(rssFile) ? Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) * 1024 : undefined
  return { ms, rssBytes, stdout: r.stdout }
}

function firstImages(t: Tensor, k: number): Tensor {
  const per = t.data.length / t.shape[0]
  return { ...t, shape: [k, ...t.shape.slice(1)], data: t.data.slice(0, k * per) }
}

function compare(y: Tensor, ref: Tensor): { top1: number; bits: number } {
  const k = y.data.length / y.shape[0]
  let worst = 0
  for (let i = 0; i < y.shape[0]; i++) {
    const b = ref.data.subarray(i * k, i * k + k)
    const scale = Math.max(1, ...Array.from(b, Math.abs))
    for (let j = 0; j < k; j++) worst = Math.max(worst, Math.abs(y.data[i * k + j] - b[j]) / scale)
  }
  return { top1: top1Agreement(y, ref), bits: -Math.log2(worst) }
}

const gib = (b?: number) => (b === undefined ? '-' : (b / 2 ** 30).toFixed(2))
const s = (ms: number) => (ms / 1000).toFixed(1)

async function main(): Promise<void> {
  const names = (arg('models') ?? Object.keys(MODELS).join(',')).split(',')
  const K = Number(arg('images') ?? 5)
  const work = mkdtempSync(path.join(tmpdir(), 'pic-ckks-scale-'))
  const rows: Record<string, unknown>[] = []
  try {
    for (const key of names) {
      const m = MODELS[key]
      if (!m) throw new Error(`unknown model '${key}' (${Object.keys(MODELS).join(', ')})`)
      const dir = path.join(FIX, m.dir)
      const planFile = path.join(work, `${key}.json`)
      const xFile = path.join(work, `${key}_x.npy`)
      const yFile = path.join(work, `${key}_y.npy`)
      writeFileSync(xFile, encodeNpy(firstImages(readNpy(path.join(dir, 'test_x.npy')), K)))
      process.stderr.write(`${m.name}: compiling\n`)
      const approx = m.approx ? ['--approx', m.approx, '--calib', path.join(dir, 'calib_x.npy')] : []
      const batch = m.batch ? ['--batch', String(m.batch)] : []
      const c = pic(['compile', path.join(dir, m.onnx), '--backend', 'ckks', ...approx, ...batch, '-o', planFile, '--quiet'])
      const plan = JSON.parse(readFileSync(planFile, 'utf8'))
      process.stderr.write(`${m.name}: running ${K} image(s) encrypted (estimated ${s(plan.stats.estimatedTotalMs)} s each)\n`)
      const r = pic(['run', planFile, '--input', xFile, '--output', yFile, '--refresh', 'client', '--json', '--quiet'])
      const res = JSON.parse(r.stdout)
      const y = readNpy(yFile)
      const vsTorch = m.ref ? compare(y, firstImages(readNpy(path.join(dir, m.ref)), K)) : undefined
      const perImage = res.perImageEvaluateMs as number
      const st = plan.stats
      rows.push({
        model: m.name,
        compileS: c.ms / 1000,
        compileRssGiB: c.rssBytes === undefined ? undefined : c.rssBytes / 2 ** 30,
        N: 2 ** plan.params.logN,
        primes: plan.params.primes.length,
        depth: st.networkDepth ?? st.depth,
        refreshes: st.bootstraps,
        rotationKeys: st.rotationKeys,
        keyGiB: st.keyBytes.total / 2 ** 30,
        heapPredictedGiB: st.memory.peakBytes / 2 ** 30,
        heapMeasuredGiB: res.memory.sealHeapBytes === null ? undefined : res.memory.sealHeapBytes / 2 ** 30,
        runRssGiB: r.rssBytes === undefined ? undefined : r.rssBytes / 2 ** 30,
        estimatedS: st.estimatedTotalMs / 1000 / (m.batch ?? 1),
        measuredS: perImage / 1000,
        refreshMiBPerImage: res.refresh.bytes / K / 2 ** 20,
        imagesPerS: 1000 / perImage,
        // a compiled model whose own logits are not finite (an approximation that diverges) has no precision to measure
        finite: res.plaintextFinite !== false,
        top1VsPlain: res.plaintextFinite !== false ? res.top1AgreementVsPlain : undefined,
        bitsVsPlain: res.plaintextFinite !== false ? -Math.log2(res.maxAbsErrorVsPlain / Math.max(1, ...Array.from(y.data, Math.abs))) : undefined,
        top1VsTorch: vsTorch?.top1,
        bitsVsTorch: vsTorch?.bits,
      })
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  const crypto = rows.find((r) => r.model === 'cryptonets28')?.measuredS as number | undefined
  const head = ['model', 'compile s', 'RSS GiB', 'N', 'primes', 'depth', 'refr', 'keys', 'key GiB', 'heap pred', 'heap meas', 'est s', 'meas s', 'meas/est', 'refresh MiB', 'img/s', 'top1 plain', 'bits plain', 'top1 torch', 'bits torch', 'vs ref']
  const lines = [head.join(' | '), head.map(() => '---').join(' | ')]
  for (const r of rows) {
    const meas = r.measuredS as number
    const ref = String(r.model).startsWith('resnet20') ? `${(ACE_RESNET20_S / meas).toFixed(0)}x faster than ACE` : crypto !== undefined && r.model !== 'cryptonets28' ? `${(meas / crypto).toFixed(meas / crypto < 10 ? 2 : 0)}x cryptonets28` : meas < 2 ? `${(2 / meas).toFixed(1)}x faster than TenSEAL MNIST` : `${(meas / 2).toFixed(1)}x TenSEAL MNIST's 2 s`
    const f = (v: unknown, d = 2) => (v === undefined ? '-' : typeof v === 'number' ? v.toFixed(d) : String(v))
    lines.push(
      [r.finite ? r.model : `${r.model} (logits not finite, in plaintext too)`, f(r.compileS, 1), f(r.compileRssGiB), r.N, r.primes, r.depth, r.refreshes, r.rotationKeys, f(r.keyGiB), gib((r.heapPredictedGiB as number) * 2 ** 30), f(r.heapMeasuredGiB), f(r.estimatedS, 1), f(meas, 1), f(meas / (r.estimatedS as number)), f(r.refreshMiBPerImage, 1), f(r.imagesPerS, 3), f(r.top1VsPlain), f(r.bitsVsPlain, 1), f(r.top1VsTorch), f(r.bitsVsTorch, 1), ref].join(' | '),
    )
  }
  console.log(`CKKS at scale, ${K} image(s) per model; latency per image (a --batch row packs K images per inference); refreshes client-aided (pic run --refresh client)`)
  console.log(lines.join('\n'))
  if (process.argv.includes('--json')) {
    mkdirSync(path.join(ROOT, 'bench/out'), { recursive: true })
    writeFileSync(path.join(ROOT, 'bench/out/ckks-scale.json'), JSON.stringify({ images: K, rows }, null, 1))
  }
}

main().catch((e) => {
  console.error(`ckks-scale: ${(e as Error).message}`)
  process.exit(1)
})
