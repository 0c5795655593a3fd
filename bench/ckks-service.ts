/**
 * The CKKS service's bytes and latency (`pic serve --plan` + `pic query` over loopback; both in this
 * process, except for fmnist32 `pkn`, whose server runs as `pic serve` in a child process with its
 * own node-seal heap, as deployed: server, client and `pic run` do not fit one 4 GB heap together;
 * that path runs the built CLI, `npm run build` first): per model, the key upload once per session as sent (seeded, zstd) against the plain
 * serialization of the same keys (measured in this run: `--key-sizes`), the bytes per image up and
 * down against the ciphertexts' raw size (2 N (level + 1) 8 bytes each, as `pic run` counts them), and the
 * service's latency per image against `pic run`'s one-process evaluation of the same plan and images.
 * Outputs are checked against the float64 interpreter of the compiled model (top-1, max logit error).
 * The link is TLS 1.3 with the server's certificate pinned, as `pic query --server-fingerprint` does;
 * plans with refreshes mask them with bounds measured on the fixture's calibration images, as
 * `pic compile --calib` does (backends/ckks/refresh.ts).
 *
 * Run: npx vite-node bench/ckks-service.ts [--images N] [--models a,b] [--json]
 *   models: cnn_square, aespa_cnn, their _192 variants (192-bit security at N = 8192: masked refreshes),
 *   cryptonets28 (digits28), pkn (fmnist32, client-aided refreshes)
 * One core does everything (client and server alternate on the same thread): the latency column is an
 * upper bound for two machines, and it is only comparable with pic run's when the machine is otherwise idle.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { compileCkks, runPlan } from '../backends/ckks/index.js'
import { calibrateRefreshBounds } from '../backends/ckks/refresh.js'
import { parseClientPart, queryCkks, startCkksServer, type CkksQueryReport } from '../backends/ckks/service.js'
import { clientPartPath } from '../compiler/cmd-ckks.js'
import { writeNpy } from '../compiler/npy.js'
import { parseNpy } from '../compiler/npy.js'
import { importModel } from '../compiler/onnx-import.js'
import { interpret } from '../ir/interpret.js'
import { maxAbsDiff, type Tensor } from '../ir/tensor.js'
import { top1Agreement } from '../passes/ola.js'
import { passContext, runPipeline } from '../passes/pass.js'
import { PIPELINES } from '../passes/pipelines.js'

const FIX = join(import.meta.dirname, '..', 'test', 'fixtures')
const argv = process.argv.slice(2)
const opt = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined)
const nImages = Number(opt('--images') ?? 3)
const asJson = argv.includes('--json')

const CASES: Record<string, { dir: string; file: string; security?: 192; logN?: number; cli?: true }> = {
  cnn_square: { dir: 'digits', file: 'cnn_square' },
  aespa_cnn: { dir: 'digits', file: 'aespa_cnn' },
  // 192-bit security at N = 8192 leaves too few levels: client-aided refreshes, masked
  cnn_square_192: { dir: 'digits', file: 'cnn_square', security: 192, logN: 13 },
  aespa_cnn_192: { dir: 'digits', file: 'aespa_cnn', security: 192, logN: 13 },
  cryptonets28: { dir: 'digits28', file: 'cryptonets28' },
  pkn: { dir: 'fmnist32', file: 'pkn', cli: true },
}
const models = (opt('--models') ?? Object.keys(CASES).join(',')).split(',')

function images(dir: string, n: number, file = 'test_x.npy'): Tensor {
  const x = parseNpy(readFileSync(join(FIX, dir, file)))
  const per = x.data.length / x.shape[0]
  return { dtype: x.dtype, shape: [n, ...x.shape.slice(1)], data: x.data.slice(0, n * per) }
}

const KB = (b: number) => +(b / 1024).toFixed(1)
const MB = (b: number) => +(b / 2 ** 20).toFixed(1)

/** What one model's run gives the table, however its parties ran. */
interface Measured {
  logN: number
  galoisKeys: number
  refreshes: number
  output: Tensor
  report: CkksQueryReport
  /** pic run on the same plan and images: ms per image and raw ciphertext bytes. */
  runMsPerImage: number
  ciphertextBytes: { upload: number; download: number }
}

/** Server and client in this process; pic run's code after them. */
async function inProcess(name: string, c: (typeof CASES)[string], g: ReturnType<typeof compiled>, x: Tensor): Promise<Measured> {
  const plan = compileCkks(g, { model: name, ...(c.security ? { security: c.security, logN: c.logN } : {}) })
  if (plan.refreshMask) calibrateRefreshBounds(plan, images(c.dir, 8, 'calib_x.npy'))
  const server = await startCkksServer(plan, { port: 0 })
  let q
  try {
    q = await queryCkks(server.clientPart, x, {
      connect: `127.0.0.1:${server.port}`, compareSerialization: true, timeoutMs: 600_000, serverTrust: { fingerprint: server.fingerprint },
    })
  } finally {
    await server.close()
  }
  const local = await runPlan(plan, x, { refresh: 'client' })
  return { logN: plan.params.logN, galoisKeys: plan.keys.rotations.length, refreshes: plan.stats.bootstraps, ...q, runMsPerImage: local.perImageEvaluateMs, ciphertextBytes: local.ciphertextBytes }
}

const BIN = join(import.meta.dirname, '..', 'bin', 'pic.js')

/** `pic compile` (with --calib) and `pic serve --once` as child processes, the client here, then `pic run --json`. */
async function viaCli(c: (typeof CASES)[string], x: Tensor): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'pic-bench-'))
  const env = { ...process.env, PIC_STATE_DIR: dir }
  const pic = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args, '--quiet'], { env, encoding: 'utf8', maxBuffer: 1 << 28 })
    if (r.status !== 0) throw new Error(`pic ${args[0]} exited ${r.status}: ${r.stderr}`)
    return r.stdout
  }
  let child: ReturnType<typeof spawn> | undefined
  try {
    const onnx = join(FIX, c.dir, `${c.file}.onnx`)
    const calib = join(FIX, c.dir, 'calib_x.npy')
    const planFile = join(dir, 'plan.json')
    pic(['compile', onnx, '--backend', 'ckks', '-o', planFile, ...(existsSync(calib) ? ['--calib', calib] : []), ...(c.security ? ['--security', String(c.security)] : [])])
    const plan = JSON.parse(readFileSync(planFile, 'utf8')) as { params: { logN: number }; keys: { rotations: unknown[] }; stats: { bootstraps: number } }
    const xFile = join(dir, 'x.npy')
    writeNpy(xFile, x)
    child = spawn(process.execPath, [BIN, 'serve', onnx, '--plan', planFile, '--port', '0', '--once'], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    const server = child
    const exit = new Promise<number>((resolve) => server.on('exit', (code) => resolve(code ?? -1)))
    const { port, fingerprint } = await new Promise<{ port: number; fingerprint: string }>((resolve, reject) => {
      let err = ''
      server.stderr!.on('data', (d) => {
        err += d
        const m = /listening on [^\s]+:(\d+)/.exec(err)
        const f = /certificate sha256 ([0-9a-f]{64})/.exec(err)
        if (m && f) resolve({ port: Number(m[1]), fingerprint: f[1] })
      })
      void exit.then(() => reject(new Error(`pic serve exited: ${err}`)))
    })
    const part = parseClientPart(JSON.parse(readFileSync(clientPartPath(planFile), 'utf8')), clientPartPath(planFile))
    const q = await queryCkks(part, x, { connect: `127.0.0.1:${port}`, compareSerialization: true, timeoutMs: 1_800_000, serverTrust: { fingerprint } })
    if ((await exit) !== 0) throw new Error('pic serve --once reported a failed session')
    const local = JSON.parse(pic(['run', planFile, '--input', xFile, '--refresh', 'client', '--json'])) as { perImageEvaluateMs: number; ciphertextBytes: { upload: number; download: number } }
    return { logN: plan.params.logN, galoisKeys: plan.keys.rotations.length, refreshes: plan.stats.bootstraps, ...q, runMsPerImage: local.perImageEvaluateMs, ciphertextBytes: local.ciphertextBytes }
  } finally {
    // a failed client leaves the server waiting for its session
    if (child && child.exitCode === null) child.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}

function compiled(c: (typeof CASES)[string]) {
  return runPipeline(importModel(readFileSync(join(FIX, c.dir, `${c.file}.onnx`)), { file: c.file }), PIPELINES.ckks({}), passContext({}, {}))
}

async function main(): Promise<void> {
  const rows: Record<string, unknown>[] = []
  for (const name of models) {
    const c = CASES[name]
    if (!c) throw new Error(`unknown model ${name} (one of ${Object.keys(CASES).join(', ')})`)
    const t0 = performance.now()
    const g = compiled(c)
    const x = images(c.dir, nImages)
    const ref = interpret(g, [x]).get(g.outputs[0])!
    const m = c.cli ? await viaCli(c, x) : await inProcess(name, c, g, x)
    const totalS = (performance.now() - t0) / 1000
    const { output, report } = m
    const k = report.bytes.keys
    const plainKeys = k.unseeded!.total
    const plainUp = m.ciphertextBytes.upload / x.shape[0]
    const plainDown = m.ciphertextBytes.download / x.shape[0]
    rows.push({
      model: name,
      logN: m.logN,
      galoisKeys: m.galoisKeys,
      refreshes: m.refreshes,
      totalS: +totalS.toFixed(1),
      keysMB: MB(k.total),
      plainKeysMB: MB(plainKeys),
      keysRatio: +(k.total / plainKeys).toFixed(3),
      upKB: KB(report.bytes.perImage.up),
      downKB: KB(report.bytes.perImage.down),
      plainUpKB: KB(plainUp),
      plainDownKB: KB(plainDown),
      upRatio: +(report.bytes.perImage.up / plainUp).toFixed(2),
      serviceMsPerImage: Math.round(report.latencyMs.perImage),
      runMsPerImage: Math.round(m.runMsPerImage),
      latencyRatio: +(report.latencyMs.perImage / m.runMsPerImage).toFixed(2),
      keygenMs: Math.round(report.latencyMs.keygen),
      top1: `${Math.round(top1Agreement(ref, output) * x.shape[0])}/${x.shape[0]}`,
      maxAbsError: +maxAbsDiff(ref, output).toExponential(2),
      load1: +loadavg()[0].toFixed(2),
    })
    if (!asJson) console.error(`done ${name}`)
  }
  if (asJson) {
    process.stdout.write(JSON.stringify({ images: nImages, rows }, null, 1) + '\n')
    return
  }
  console.log(`CKKS service over loopback (TLS 1.3, pinned certificate; refreshes masked with calibrated bounds), ${nImages} image(s) per model; plain keys = the same keys serialized without seeds or compression (this run); plain up/down = raw ciphertexts, 2 N (level+1) 8 B each`)
  const cols = ['model', 'logN', 'galoisKeys', 'refreshes', 'keysMB', 'plainKeysMB', 'keysRatio', 'upKB', 'plainUpKB', 'upRatio', 'downKB', 'plainDownKB', 'serviceMsPerImage', 'runMsPerImage', 'latencyRatio', 'top1', 'maxAbsError', 'load1']
  console.log('| ' + cols.join(' | ') + ' |')
  console.log('|' + cols.map(() => '---').join('|') + '|')
  for (const r of rows) console.log('| ' + cols.map((col) => String(r[col])).join(' | ') + ' |')
}

await main()
