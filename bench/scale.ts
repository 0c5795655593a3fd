/**
 * MPC at scale: one row per model, every party a separate `node bin/pic.js` process over loopback TCP
 * (listening on 127.0.0.1 only), from the built CLI in dist/ (build with `npx tsc -p tsconfig.json`).
 *
 * Per model: `pic compile MODEL --backend mpc -o S.json` (wall time of the child process), then
 * `pic dealer --port 0` and `pic serve MODEL --schedule S --port 0` (start-up = spawn until the
 * process prints `listening on 127.0.0.1:PORT`, which is also how the port is found: port 0 lets
 * the OS pick a free one), then `pic query S ... --json` on K images. Columns: ReLUs and AND gates
 * (schedule), online and offline bytes and rounds per image, predicted (schedule) and measured
 * (query --json; `=` when equal to the prediction), online and total latency per image on loopback
 * (query's latencyMs; total includes the offline phase and session set-up), peak RSS of the dealer,
 * server and client, online bytes and microseconds per garbled ReLU against Delphi's ResNet-32 on
 * CIFAR (7.65 s and 361.6 MB online for 303,104 ReLUs: 25.2 us and 1,193 B per ReLU), and the outputs
 * against a reference: PyTorch's logits (ref_NAME.npy) for the trained fixtures, the interpreter
 * (`pic infer`) for the random-weight CIFAR models (`vs` says which): top-1 agreement and the largest
 * logit error relative to max(1, max |reference logit|).
 *
 * Peak RSS: the dealer and server run until the bench stops them; `VmHWM` in /proc/PID/status is
 * polled every 100 ms and read once more just before SIGTERM. The client (and compile) run under
 * `/usr/bin/time -f %M` when it is installed (the kernel's ru_maxrss, exact), else VmHWM is polled.
 *
 * Models (`--models a,b`): the fmnist32 fixtures `resnet20`, `resnet20_senet`, `resnet20_aespa`,
 * `pkn` (test/fixtures/fmnist32, query images: the first K of its test_x.npy); the random-weight
 * `resnet20_cifar`, `resnet18_cifar` (bench/cifar.ts, written to bench/out; query images random
 * normal [K,3,32,32]); any digits fixture by name (`mlp_relu`, `resnet8`, ...: test/fixtures/digits,
 * its test_x.npy). Default: resnet20,resnet20_senet,resnet20_cifar,resnet18_cifar.
 *
 *   npx vite-node bench/scale.ts [-- options]         (npm run bench:scale -- options)
 *     --models a,b          models to run (default above)
 *     --images K            images per model (default 20; 2 for the CIFAR models)
 *     --cifar-images K      images for the CIFAR models (default 2, 1 with --quick)
 *     --quick               5 images (1 for the CIFAR models)
 *     --timeout-min M       per-model limit in minutes (default 30; fractions allowed): every child is killed, the row
 *                           records the error and the bench goes on
 *     --peer-timeout MS     the parties' silent-peer timeout (pic --timeout; default 600000)
 *     --json                also write bench/out/scale.json
 *
 * Progress goes to stderr, the table to stdout. Every child is killed on exit, error or interrupt.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { encodeNpy, readNpy } from '../compiler/npy.js'
import type { Tensor } from '../ir/tensor.js'
import type * as Cifar from './cifar.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin/pic.js')
const FMNIST = path.join(ROOT, 'test/fixtures/fmnist32')
const DIGITS = path.join(ROOT, 'test/fixtures/digits')
const OUT = path.join(ROOT, 'bench/out')
const FMNIST_MODELS = ['resnet20', 'resnet20_senet', 'resnet20_aespa', 'pkn']
const CIFAR_MODELS = ['resnet20_cifar', 'resnet18_cifar']
const DEFAULT_MODELS = ['resnet20', 'resnet20_senet', 'resnet20_cifar', 'resnet18_cifar']
/** Delphi (Mishra et al. 2020), ResNet-32 on CIFAR-100: online 7.65 s and 361.6 MB for 303,104 ReLUs. */
const DELPHI = { usPerRelu: (7.65e6 / 303_104), bytesPerRelu: 361.6e6 / 303_104 }
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined

// ---------------------------------------------------------------- options

const args = process.argv.slice(2)
function opt(name: string): string | undefined {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
function numOpt(name: string, fallback: number, integer = true): number {
  const v = opt(name)
  if (v === undefined) return fallback
  const n = Number(v)
  if (!(n > 0) || (integer && !Number.isInteger(n))) throw new Error(`${name} must be a positive ${integer ? 'integer' : 'number'}, not '${v}'`)
  return n
}
const quick = args.includes('--quick')
const images = numOpt('--images', quick ? 5 : 20)
const cifarImages = numOpt('--cifar-images', opt('--images') !== undefined ? images : quick ? 1 : 2)
const modelTimeoutMs = Math.round(numOpt('--timeout-min', 30, false) * 60_000)
const peerTimeoutMs = numOpt('--peer-timeout', 600_000)
const models = (opt('--models') ?? DEFAULT_MODELS.join(',')).split(',').map((s) => s.trim()).filter(Boolean)

const say = (msg: string) => process.stderr.write(`scale: ${msg}\n`)

// ---------------------------------------------------------------- child processes

/** A started `pic` child: output so far, its exit, and the peak RSS seen (KiB). */
interface Proc {
  name: string
  child: ChildProcess
  stdout: string
  stderr: string
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  exited: boolean
  /** Peak resident set in KiB (polled VmHWM, or /usr/bin/time's report after exit). */
  hwmKiB: number
  /** The file /usr/bin/time writes its report to, when the child runs under it. */
  timeFile?: string
}

const live = new Set<Proc>()
/** Scratch directories to remove on exit, also when interrupted. */
const scratch = new Set<string>()

function readHwm(p: Proc): void {
  if (p.timeFile || p.exited || p.child.pid === undefined) return
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'))
    if (m) p.hwmKiB = Math.max(p.hwmKiB, Number(m[1]))
  } catch {
    // gone between the check and the read
  }
}

const poller = setInterval(() => live.forEach(readHwm), 100)
poller.unref()

/** Kill a child's process group (it is started detached, so /usr/bin/time's child goes too). */
function kill(p: Proc, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (p.exited || p.child.pid === undefined) return
  try {
    process.kill(-p.child.pid, signal)
  } catch {
    // already gone
  }
}

function killAll(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const p of live) kill(p, signal)
}

process.on('exit', () => {
  killAll()
  for (const d of scratch) rmSync(d, { recursive: true, force: true })
})
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(sig, () => {
    say(`${sig}: stopping every child`)
    killAll()
    process.exit(130)
  })

/** Start `node bin/pic.js ARGS` (under /usr/bin/time when `timed` and it is installed). */
function start(name: string, picArgs: string[], tmp: string, timed = false): Proc {
  const timeFile = timed && TIME ? path.join(tmp, `${name}.time`) : undefined
  const argv = timeFile ? [TIME!, '-f', '%M', '-o', timeFile, process.execPath, BIN, ...picArgs] : [process.execPath, BIN, ...picArgs]
  const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const p: Proc = { name, child, stdout: '', stderr: '', exited: false, hwmKiB: 0, timeFile, exit: undefined! }
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (p.stdout += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (p.stderr += d))
  p.exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      p.exited = true
      live.delete(p)
      if (timeFile)
        try {
          const kb = /^(\d+)\s*$/m.exec(readFileSync(timeFile, 'utf8'))
          if (kb) p.hwmKiB = Number(kb[1])
        } catch {
          // no report (killed)
        }
      resolve({ code, signal })
    })
    child.on('error', (e) => {
      p.stderr += String(e)
      p.exited = true
      live.delete(p)
      resolve({ code: -1, signal: null })
    })
  })
  live.add(p)
  return p
}

const tail = (s: string) => s.trim().split('\n').slice(-6).join('\n') || '(no output)'

/** Run a child to completion; resolves with its seconds, or rejects with its stderr. */
async function run(name: string, picArgs: string[], tmp: string, timed = false): Promise<{ proc: Proc; seconds: number }> {
  const t0 = performance.now()
  const proc = start(name, picArgs, tmp, timed)
  const { code, signal } = await proc.exit
  const seconds = (performance.now() - t0) / 1000
  if (code !== 0) throw new Error(`pic ${picArgs[0]} (${name}) ${signal ? `killed by ${signal}` : `exited with ${code}`}:\n${tail(proc.stderr)}`)
  return { proc, seconds }
}

/** Start a listening party; resolves when it prints `listening on HOST:PORT`. */
async function listen(name: string, picArgs: string[], tmp: string): Promise<{ proc: Proc; port: number; seconds: number }> {
  const t0 = performance.now()
  const proc = start(name, picArgs, tmp)
  const port = await new Promise<number>((resolve, reject) => {
    const check = () => {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(proc.stderr)
      if (m) {
        proc.child.stderr!.off('data', check)
        resolve(Number(m[1]))
      }
    }
    proc.child.stderr!.on('data', check)
    proc.exit.then(({ code, signal }) => reject(new Error(`pic ${picArgs[0]} ended before listening (${signal ?? code}):\n${tail(proc.stderr)}`)))
  })
  return { proc, port, seconds: (performance.now() - t0) / 1000 }
}

/** Stop a listening party: read its peak RSS, SIGTERM, SIGKILL after 10 s. */
async function stop(p: Proc): Promise<void> {
  readHwm(p)
  kill(p, 'SIGTERM')
  const timer = setTimeout(() => kill(p, 'SIGKILL'), 10_000)
  await p.exit
  clearTimeout(timer)
}

// ---------------------------------------------------------------- models

interface Spec {
  name: string
  family: 'fmnist32' | 'cifar' | 'digits'
  file: string
  /** The query images (.npy) and the reference logits (.npy, or computed with pic infer). */
  images: number
  prepare(tmp: string): Promise<{ x: string; ref: string; vs: 'PyTorch' | 'interpreter' }>
}

let cifarFiles: { resnet20: string; resnet18: string } | undefined
let cifarModule: typeof Cifar | undefined

async function cifar(): Promise<typeof Cifar> {
  if (!cifarModule) {
    globalThis.PIC_BENCH_LIBRARY = true
    cifarModule = await import('./cifar.js')
  }
  return cifarModule
}

function firstImages(file: string, k: number, tmp: string, name: string): string {
  const t = readNpy(file)
  if (t.shape[0] < k) throw new Error(`${file} has ${t.shape[0]} images, --images asks for ${k}`)
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1)
  const out = path.join(tmp, `${name}_x.npy`)
  writeFileSync(out, encodeNpy({ dtype: 'float32', shape: [k, ...t.shape.slice(1)], data: t.data.slice(0, k * per) }))
  return out
}

function spec(name: string): Spec {
  if (FMNIST_MODELS.includes(name))
    return {
      name, family: 'fmnist32', file: path.join(FMNIST, `${name}.onnx`), images,
      prepare: async (tmp) => ({ x: firstImages(path.join(FMNIST, 'test_x.npy'), images, tmp, name), ref: path.join(FMNIST, `ref_${name}.npy`), vs: 'PyTorch' }),
    }
  if (CIFAR_MODELS.includes(name)) {
    const kind = name.replace('_cifar', '') as 'resnet20' | 'resnet18'
    return {
      name, family: 'cifar', file: path.join(OUT, `${name}.onnx`), images: cifarImages,
      prepare: async (tmp) => {
        const c = await cifar()
        if (!cifarFiles) {
          say('writing the random-weight CIFAR models (bench/cifar.ts)')
          cifarFiles = c.writeCifarModels(OUT)
        }
        const x = path.join(tmp, `${name}_x.npy`)
        writeFileSync(x, encodeNpy(c.cifarImages(cifarImages, 32)))
        const ref = path.join(tmp, `${name}_ref.npy`)
        say(`${name}: reference logits with pic infer`)
        await run(`${name}-infer`, ['infer', cifarFiles[kind], '--input', x, '--output', ref, '--quiet'], tmp)
        return { x, ref, vs: 'interpreter' }
      },
    }
  }
  const file = path.join(DIGITS, `${name}.onnx`)
  if (!existsSync(file)) throw new Error(`unknown model '${name}' (fmnist32: ${FMNIST_MODELS.join(', ')}; cifar: ${CIFAR_MODELS.join(', ')}; or a test/fixtures/digits model)`)
  return {
    name, family: 'digits', file, images,
    prepare: async (tmp) => ({ x: firstImages(path.join(DIGITS, 'test_x.npy'), images, tmp, name), ref: path.join(DIGITS, `ref_${name}.npy`), vs: 'PyTorch' }),
  }
}

// ---------------------------------------------------------------- one model

interface Costs {
  online: number
  offline: number
  rounds: number
}

interface Row {
  model: string
  family: string
  images: number
  error?: string
  /** What the run was doing when it failed, and for how many seconds it had been at it. */
  failedIn?: { phase: string; seconds: number }
  /** Peak RSS (MiB) of the children still running when the run failed, by name. */
  rssAtFailureMiB?: Record<string, number>
  compileS?: number
  compileRssMiB?: number
  dealerStartS?: number
  serverStartS?: number
  reluCount?: number
  andGates?: number
  predicted?: Costs & { latencyMs: Record<string, number> }
  measured?: Costs
  onlineMsPerImage?: number
  totalMsPerImage?: number
  rssMiB?: { dealer: number; server: number; client: number }
  perRelu?: { onlineBytes: number; onlineUs: number; bytesVsDelphi: number; usVsDelphi: number }
  accuracy?: { vs: string; top1Agree: number; maxRelError: number; maxAbsError: number }
}

function compare(y: Tensor, ref: Tensor, k: number): { top1Agree: number; maxRelError: number; maxAbsError: number } {
  const c = y.shape[y.shape.length - 1]
  let agree = 0
  let diff = 0
  let scale = 0
  const argmax = (a: ArrayLike<number>, off: number) => {
    let b = 0
    for (let j = 1; j < c; j++) if (a[off + j] > a[off + b]) b = j
    return b
  }
  for (let i = 0; i < k; i++) {
    if (argmax(y.data, i * c) === argmax(ref.data, i * c)) agree++
    for (let j = 0; j < c; j++) {
      diff = Math.max(diff, Math.abs(y.data[i * c + j] - ref.data[i * c + j]))
      scale = Math.max(scale, Math.abs(ref.data[i * c + j]))
    }
  }
  return { top1Agree: agree, maxRelError: diff / Math.max(1, scale), maxAbsError: diff }
}

/** The phase a model's run is in, for the error message of a timeout. */
let phase = { name: '', t0: 0 }
function enter(name: string): void {
  phase = { name, t0: performance.now() }
}

async function runModel(s: Spec, tmp: string, row: Row): Promise<void> {
  const t = (p: string) => path.join(tmp, `${s.name}_${p}`)
  enter('preparing inputs and references')
  const { x, ref, vs } = await s.prepare(tmp)
  const sched = t('schedule.json')
  const peer = ['--timeout', String(peerTimeoutMs)]

  say(`${s.name}: pic compile --backend mpc`)
  enter('pic compile')
  const c = await run(`${s.name}-compile`, ['compile', s.file, '--backend', 'mpc', '-o', sched, '--quiet'], tmp, true)
  row.compileS = c.seconds
  row.compileRssMiB = c.proc.hwmKiB / 1024
  const schedule = JSON.parse(readFileSync(sched, 'utf8')) as { reluCount: number; andGates: number; rounds: number; bytes: { online: number; offline: number }; latencyMs: Record<string, number> }
  row.reluCount = schedule.reluCount
  row.andGates = schedule.andGates
  row.predicted = { online: schedule.bytes.online, offline: schedule.bytes.offline, rounds: schedule.rounds, latencyMs: schedule.latencyMs }
  say(`${s.name}: compiled in ${c.seconds.toFixed(2)} s (${schedule.reluCount} ReLUs, ${schedule.andGates} AND gates); starting the dealer and the server`)

  enter('dealer start-up')
  const dealer = await listen(`${s.name}-dealer`, ['dealer', '--host', '127.0.0.1', '--port', '0', ...peer], tmp)
  row.dealerStartS = dealer.seconds
  enter('server start-up (pic serve until listening)')
  const server = await listen(`${s.name}-server`, ['serve', s.file, '--schedule', sched, '--host', '127.0.0.1', '--port', '0', '--dealer', `127.0.0.1:${dealer.port}`, ...peer], tmp)
  row.serverStartS = server.seconds
  say(`${s.name}: server listening on 127.0.0.1:${server.port} after ${server.seconds.toFixed(2)} s (dealer on ${dealer.port}); querying ${s.images} image(s)`)

  const y = t('y.npy')
  enter('pic query')
  const q = await run(`${s.name}-client`, ['query', sched, '--connect', `127.0.0.1:${server.port}`, '--dealer', `127.0.0.1:${dealer.port}`, '--input', x, '--output', y, '--json', ...peer], tmp, true)
  await stop(server.proc)
  await stop(dealer.proc)
  const report = JSON.parse(q.proc.stdout) as { images: number; perImage: { bytes: { online: number; offline: number }; rounds: number }; latencyMs: { perImage: number; onlinePerImage: number } }
  row.measured = { online: report.perImage.bytes.online, offline: report.perImage.bytes.offline, rounds: report.perImage.rounds }
  row.onlineMsPerImage = report.latencyMs.onlinePerImage
  row.totalMsPerImage = report.latencyMs.perImage
  row.rssMiB = { dealer: dealer.proc.hwmKiB / 1024, server: server.proc.hwmKiB / 1024, client: q.proc.hwmKiB / 1024 }
  if (row.reluCount > 0) {
    const onlineBytes = row.measured.online / row.reluCount
    const onlineUs = (row.onlineMsPerImage * 1000) / row.reluCount
    row.perRelu = { onlineBytes, onlineUs, bytesVsDelphi: onlineBytes / DELPHI.bytesPerRelu, usVsDelphi: onlineUs / DELPHI.usPerRelu }
  }
  row.accuracy = { vs, ...compare(readNpy(y), readNpy(ref), s.images) }
  say(`${s.name}: done (online ${row.onlineMsPerImage.toFixed(1)} ms per image, top-1 ${row.accuracy.top1Agree}/${s.images} against ${vs})`)
}

/** One model under the per-model time limit: on timeout or error every child of the run is killed. */
async function bounded(s: Spec, tmp: string): Promise<Row> {
  const row: Row = { model: s.name, family: s.family, images: s.images }
  const before = new Set(live)
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${modelTimeoutMs / 60_000} min`)), modelTimeoutMs)
  })
  try {
    await Promise.race([runModel(s, tmp, row), limit])
  } catch (e) {
    row.error = (e as Error).message
    row.failedIn = { phase: phase.name, seconds: (performance.now() - phase.t0) / 1000 }
    row.error += ` (during ${row.failedIn.phase}, after ${row.failedIn.seconds.toFixed(1)} s of it)`
    say(`${s.name}: FAILED: ${row.error}`)
  } finally {
    clearTimeout(timer)
    const mine = [...live].filter((p) => !before.has(p))
    if (row.error && mine.length) {
      mine.forEach(readHwm)
      row.rssAtFailureMiB = Object.fromEntries(mine.map((p) => [p.name, p.hwmKiB / 1024]))
    }
    for (const p of mine) kill(p, 'SIGKILL')
    await Promise.all(mine.map((p) => p.exit))
  }
  return row
}

// ---------------------------------------------------------------- table

function human(b: number | undefined): string {
  if (b === undefined) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let v = b
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v >= 100 || u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`
}

function table(rows: Row[]): string {
  const cols: [string, number, (r: Row) => string][] = [
    ['model', 20, (r) => r.model],
    ['compile s', 9, (r) => r.compileS?.toFixed(2) ?? '-'],
    ['start s', 8, (r) => r.serverStartS?.toFixed(2) ?? '-'],
    ['ReLUs', 8, (r) => r.reluCount?.toString() ?? '-'],
    ['ANDs', 10, (r) => r.andGates?.toString() ?? '-'],
    ['online pred', 11, (r) => human(r.predicted?.online)],
    ['meas', 11, (r) => (r.measured ? (r.measured.online === r.predicted!.online ? '=' : human(r.measured.online)) : '-')],
    ['offline pred', 12, (r) => human(r.predicted?.offline)],
    ['meas', 11, (r) => (r.measured ? (r.measured.offline === r.predicted!.offline ? '=' : human(r.measured.offline)) : '-')],
    ['rnd', 4, (r) => r.predicted?.rounds.toString() ?? '-'],
    ['meas', 5, (r) => (r.measured ? (r.measured.rounds === r.predicted!.rounds ? '=' : String(r.measured.rounds)) : '-')],
    ['on ms/img', 10, (r) => r.onlineMsPerImage?.toFixed(1) ?? '-'],
    ['tot ms/img', 10, (r) => r.totalMsPerImage?.toFixed(1) ?? '-'],
    ['RSS MiB d/s/c', 15, (r) => (r.rssMiB ? `${r.rssMiB.dealer.toFixed(0)}/${r.rssMiB.server.toFixed(0)}/${r.rssMiB.client.toFixed(0)}` : '-')],
    ['B/ReLU', 7, (r) => r.perRelu?.onlineBytes.toFixed(0) ?? '-'],
    ['xDelphi', 7, (r) => (r.perRelu ? r.perRelu.bytesVsDelphi.toFixed(2) : '-')],
    ['us/ReLU', 8, (r) => r.perRelu?.onlineUs.toFixed(2) ?? '-'],
    ['xDelphi', 7, (r) => (r.perRelu ? r.perRelu.usVsDelphi.toFixed(2) : '-')],
    ['top-1', 7, (r) => (r.accuracy ? `${r.accuracy.top1Agree}/${r.images}` : '-')],
    ['max err', 8, (r) => r.accuracy?.maxRelError.toExponential(1) ?? '-'],
    ['vs', 11, (r) => r.accuracy?.vs ?? '-'],
  ]
  const head = cols.map(([h, w], i) => (i === 0 ? h.padEnd(w) : h.padStart(w))).join(' ')
  const lines = rows.map((r) => cols.map(([, w, f], i) => (i === 0 ? f(r).padEnd(w) : f(r).padStart(w))).join(' '))
  const rss = (r: Row) => (r.rssAtFailureMiB ? `; peak RSS then: ${Object.entries(r.rssAtFailureMiB).map(([k, v]) => `${k} ${v.toFixed(0)} MiB`).join(', ')}` : '')
  const errors = rows.filter((r) => r.error).map((r) => `${r.model}: ${r.error!.split('\n').join('\n    ')}${rss(r)}`)
  return [head, ...lines, ...(errors.length ? ['', 'failed:', ...errors] : [])].join('\n')
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  if (!existsSync(path.join(ROOT, 'dist/compiler/cli.js'))) throw new Error('build the CLI first: npx tsc -p tsconfig.json')
  const specs = models.map(spec)
  const tmp = mkdtempSync(path.join(tmpdir(), 'pic-scale-'))
  scratch.add(tmp)
  const rows: Row[] = []
  const t0 = performance.now()
  try {
    for (const s of specs) {
      say(`${s.name} (${s.family}, ${s.images} image(s), limit ${modelTimeoutMs / 60_000} min)`)
      rows.push(await bounded(s, tmp))
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  console.log(
    `MPC at scale: dealer, server and client as separate pic processes on loopback TCP (127.0.0.1), Node ${process.version}; per image; ` +
      `bytes and rounds predicted by the schedule and measured by pic query ('=' when equal); start s = pic serve until listening; ` +
      `RSS = peak of dealer/server/client; per garbled ReLU against Delphi's ResNet-32 (${DELPHI.bytesPerRelu.toFixed(0)} B, ${DELPHI.usPerRelu.toFixed(1)} us online); ` +
      `max err = largest logit error / max(1, max |reference|)\n`,
  )
  console.log(table(rows))
  say(`finished in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  if (args.includes('--json')) {
    mkdirSync(OUT, { recursive: true })
    const file = path.join(OUT, 'scale.json')
    writeFileSync(file, JSON.stringify({ images, cifarImages, delphi: DELPHI, rows }, null, 1) + '\n')
    console.log(`\nwrote ${path.relative(ROOT, file)}`)
  }
  if (rows.some((r) => r.error)) process.exitCode = 1
}

await main()
