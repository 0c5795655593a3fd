/**
 * MPC at scale: one row per model, every party a separate `node bin/pic.js` process over loopback TCP
 * (listening on 127.0.0.1 only), from the built CLI in dist/ (build with `npx tsc -p tsconfig.json`).
 *
 * Per model and offline mode: `pic compile MODEL --backend mpc -o S.json` (wall time of the child
 * process), then, with `--offline dealer`, `pic dealer --port 0`, and `pic serve MODEL --schedule S
 * --port 0` (start-up = spawn until the process prints `listening on 127.0.0.1:PORT`, which is also
 * how the port is found: port 0 lets the OS pick a free one), then `pic query S ... --json` on K
 * images. In two-party mode (the default) no dealer is started and neither serve nor query gets
 * `--dealer`: the parties make the offline material between them (backends/mpc/offline.ts).
 *
 * First table (online), per row: ReLUs and AND gates (schedule), online and offline bytes and rounds
 * per image, predicted (schedule; offline: `twoParty.bytes.total` in two-party mode, `bytes.offline`
 * with the dealer) and measured (query --json; `=` when equal to the prediction), online and total
 * latency per image on loopback (query's latencyMs; total includes the offline phase and session
 * set-up), peak RSS of the dealer (two-party: none), server and client, online bytes and
 * microseconds per garbled ReLU against Delphi's ResNet-32 on CIFAR (7.65 s and 361.6 MB online for
 * 303,104 ReLUs: 25.2 us and 1,193 B per ReLU), and the outputs against a reference: PyTorch's logits
 * (ref_NAME.npy) for the trained fixtures, the interpreter (`pic infer`) for the random-weight CIFAR
 * models (`vs` says which): top-1 agreement and the largest logit error relative to
 * max(1, max |reference logit|).
 *
 * Second table (offline), per row: offline bytes per image predicted and measured, offline seconds
 * per image measured (query's latencyMs.offlinePerImage: each image's wall time less its online part)
 * and modelled (two-party: the schedule's twoParty.latencyMs.LAN, computation included), the session
 * set-up (two-party: public operators, RLWE key, base OTs; query's latencyMs.setup and bytes.setup,
 * against twoParty.setupBytes, which leaves out the hello, acceptance and summary messages), offline
 * KB (10^3 B) and microseconds per ReLU, and their ratio to Delphi's published offline cost per ReLU
 * (DELPHI_OFFLINE: ResNet-32, 58.3 s and 6.04 GB for 303,104 ReLUs; ResNet-18, 332 s and 11.0 GB,
 * taken at the 557,056 ReLUs of this bench's 32x32 ResNet-18), with the two Delphi rows printed
 * beneath; ratios > 1 mean PIC costs more.
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
 *     --offline MODE        two-party (default), dealer, or both (each model once per mode)
 *     --json                also write bench/out/scale.json
 *
 * Progress goes to stderr, the tables to stdout. Every child is killed on exit, error or interrupt.
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
/**
 * Delphi's published offline (preprocessing) cost, whole network per inference: ResNet-32 on CIFAR,
 * 58.3 s and 6.04 GB for 303,104 ReLUs; ResNet-18, 332 s and 11.0 GB, per ReLU at the 557,056 ReLUs
 * a 32x32 ResNet-18 has (the count this bench's resnet18_cifar schedule reports; checked at run time).
 */
const DELPHI_OFFLINE = [
  { name: 'Delphi ResNet-32', relus: 303_104, seconds: 58.3, bytes: 6.04e9 },
  { name: 'Delphi ResNet-18', relus: 557_056, seconds: 332, bytes: 11.0e9 },
].map((d) => ({ ...d, usPerRelu: (d.seconds * 1e6) / d.relus, bytesPerRelu: d.bytes / d.relus }))
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
type Mode = 'two-party' | 'dealer'
const offlineOpt = opt('--offline') ?? 'two-party'
if (!['two-party', 'dealer', 'both'].includes(offlineOpt)) throw new Error(`--offline must be two-party, dealer or both, not '${offlineOpt}'`)
const modes: Mode[] = offlineOpt === 'both' ? ['two-party', 'dealer'] : [offlineOpt as Mode]

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

/** `prepare` once per model: with `--offline both` the second mode reuses the images and references. */
function once<A, T>(f: (a: A) => Promise<T>): (a: A) => Promise<T> {
  let p: Promise<T> | undefined
  return (a) => (p ??= f(a))
}

function spec(name: string): Spec {
  const s = specOf(name)
  return { ...s, prepare: once(s.prepare) }
}

function specOf(name: string): Spec {
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

/** The part of the schedule's two-party prediction the bench reads (offline.ts TwoPartyCost). */
interface TwoPartyPrediction {
  bytes: { heUp: number; heDown: number; ot: number; exchanged: number; total: number }
  setupBytes: number
  latencyMs: Record<string, number>
  computeMs: number
}

interface Row {
  model: string
  family: string
  offline: Mode
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
  rssMiB?: { dealer?: number; server: number; client: number }
  perRelu?: { onlineBytes: number; onlineUs: number; bytesVsDelphi: number; usVsDelphi: number }
  /** The offline phase: prediction (bytes per image for this mode; two-party: modelled LAN ms and set-up bytes), measurement, per ReLU. */
  offlineCost?: {
    predictedBytes: number
    modelledMs?: number
    predictedSetupBytes?: number
    measuredBytes: number
    ms: number
    setupMs: number
    setupBytes: number
    perRelu?: { bytes: number; us: number; vsDelphi: { bytes: number; us: number }[] }
  }
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

interface Schedule {
  reluCount: number
  andGates: number
  rounds: number
  bytes: { online: number; offline: number }
  latencyMs: Record<string, number>
  twoParty?: TwoPartyPrediction | { unavailable: string }
}

interface QueryJson {
  images: number
  offline: Mode
  bytes: { setup: number }
  perImage: { bytes: { online: number; offline: number }; rounds: number }
  latencyMs: { perImage: number; onlinePerImage: number; offlinePerImage: number; setup: number }
}

async function runModel(s: Spec, mode: Mode, tmp: string, row: Row): Promise<void> {
  const t = (p: string) => path.join(tmp, `${s.name}_${mode}_${p}`)
  enter('preparing inputs and references')
  const { x, ref, vs } = await s.prepare(tmp)
  const sched = t('schedule.json')
  const peer = ['--timeout', String(peerTimeoutMs)]

  say(`${s.name}: pic compile --backend mpc`)
  enter('pic compile')
  const c = await run(`${s.name}-compile`, ['compile', s.file, '--backend', 'mpc', '-o', sched, '--quiet'], tmp, true)
  row.compileS = c.seconds
  row.compileRssMiB = c.proc.hwmKiB / 1024
  const schedule = JSON.parse(readFileSync(sched, 'utf8')) as Schedule
  row.reluCount = schedule.reluCount
  row.andGates = schedule.andGates
  const twoParty = schedule.twoParty && 'bytes' in schedule.twoParty ? schedule.twoParty : undefined
  if (mode === 'two-party' && !twoParty)
    throw new Error(`the schedule has no two-party offline phase: ${schedule.twoParty && 'unavailable' in schedule.twoParty ? schedule.twoParty.unavailable : 'no twoParty entry'}`)
  // the offline bytes this mode should move: the dealer's correlations plus the exchange, or the two-party phase's
  const offlinePredicted = mode === 'two-party' ? twoParty!.bytes.total : schedule.bytes.offline
  row.predicted = { online: schedule.bytes.online, offline: offlinePredicted, rounds: schedule.rounds, latencyMs: schedule.latencyMs }
  say(`${s.name}: compiled in ${c.seconds.toFixed(2)} s (${schedule.reluCount} ReLUs, ${schedule.andGates} AND gates); offline: ${mode}`)

  let dealer: { proc: Proc; port: number } | undefined
  if (mode === 'dealer') {
    enter('dealer start-up')
    const d = await listen(`${s.name}-dealer`, ['dealer', '--host', '127.0.0.1', '--port', '0', ...peer], tmp)
    row.dealerStartS = d.seconds
    dealer = d
  }
  const viaDealer = dealer ? ['--dealer', `127.0.0.1:${dealer.port}`] : []
  enter('server start-up (pic serve until listening)')
  const server = await listen(`${s.name}-server`, ['serve', s.file, '--schedule', sched, '--host', '127.0.0.1', '--port', '0', ...viaDealer, ...peer], tmp)
  row.serverStartS = server.seconds
  say(`${s.name}: server listening on 127.0.0.1:${server.port} after ${server.seconds.toFixed(2)} s${dealer ? ` (dealer on ${dealer.port})` : ''}; querying ${s.images} image(s)`)

  const y = t('y.npy')
  enter(`pic query (${mode} offline phase)`)
  const q = await run(`${s.name}-client`, ['query', sched, '--connect', `127.0.0.1:${server.port}`, ...viaDealer, '--input', x, '--output', y, '--json', ...peer], tmp, true)
  await stop(server.proc)
  if (dealer) await stop(dealer.proc)
  const report = JSON.parse(q.proc.stdout) as QueryJson
  if (report.offline !== mode) throw new Error(`pic query ran the ${report.offline} offline phase, the bench asked for ${mode}`)
  row.measured = { online: report.perImage.bytes.online, offline: report.perImage.bytes.offline, rounds: report.perImage.rounds }
  row.onlineMsPerImage = report.latencyMs.onlinePerImage
  row.totalMsPerImage = report.latencyMs.perImage
  row.rssMiB = { dealer: dealer ? dealer.proc.hwmKiB / 1024 : undefined, server: server.proc.hwmKiB / 1024, client: q.proc.hwmKiB / 1024 }
  row.offlineCost = {
    predictedBytes: offlinePredicted,
    modelledMs: mode === 'two-party' ? twoParty!.latencyMs.LAN : undefined,
    predictedSetupBytes: mode === 'two-party' ? twoParty!.setupBytes : undefined,
    measuredBytes: report.perImage.bytes.offline,
    ms: report.latencyMs.offlinePerImage,
    setupMs: report.latencyMs.setup,
    setupBytes: report.bytes.setup,
  }
  if (row.reluCount > 0) {
    const onlineBytes = row.measured.online / row.reluCount
    const onlineUs = (row.onlineMsPerImage * 1000) / row.reluCount
    row.perRelu = { onlineBytes, onlineUs, bytesVsDelphi: onlineBytes / DELPHI.bytesPerRelu, usVsDelphi: onlineUs / DELPHI.usPerRelu }
    const bytes = row.offlineCost.measuredBytes / row.reluCount
    const us = (row.offlineCost.ms * 1000) / row.reluCount
    row.offlineCost.perRelu = { bytes, us, vsDelphi: DELPHI_OFFLINE.map((d) => ({ bytes: bytes / d.bytesPerRelu, us: us / d.usPerRelu })) }
  }
  row.accuracy = { vs, ...compare(readNpy(y), readNpy(ref), s.images) }
  say(`${s.name}: done (${mode}: offline ${(row.offlineCost.ms / 1000).toFixed(2)} s and online ${row.onlineMsPerImage.toFixed(1)} ms per image, top-1 ${row.accuracy.top1Agree}/${s.images} against ${vs})`)
}

/** One model under the per-model time limit: on timeout or error every child of the run is killed. */
async function bounded(s: Spec, mode: Mode, tmp: string): Promise<Row> {
  const row: Row = { model: s.name, family: s.family, offline: mode, images: s.images }
  const before = new Set(live)
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${modelTimeoutMs / 60_000} min`)), modelTimeoutMs)
  })
  try {
    await Promise.race([runModel(s, mode, tmp, row), limit])
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

type Column = [string, number, (r: Row) => string]

/** Columns padded to their widths (the first left-aligned), then any failures with their phase and RSS. */
function render(cols: Column[], rows: Row[], extra: string[][] = []): string {
  const pad = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(cols[i][1]) : c.padStart(cols[i][1]))).join(' ').trimEnd()
  const head = pad(cols.map(([h]) => h))
  const lines = rows.map((r) => pad(cols.map(([, , f]) => f(r))))
  const rss = (r: Row) => (r.rssAtFailureMiB ? `; peak RSS then: ${Object.entries(r.rssAtFailureMiB).map(([k, v]) => `${k} ${v.toFixed(0)} MiB`).join(', ')}` : '')
  const errors = rows.filter((r) => r.error).map((r) => `${r.model} (${r.offline}): ${r.error!.split('\n').join('\n    ')}${rss(r)}`)
  return [head, ...lines, ...extra.map(pad), ...(errors.length ? ['', 'failed:', ...errors] : [])].join('\n')
}

const same = (measured: number | undefined, predicted: number | undefined) =>
  measured === undefined ? '-' : measured === predicted ? '=' : human(measured)

function table(rows: Row[]): string {
  const cols: Column[] = [
    ['model', 20, (r) => r.model],
    ['offline', 9, (r) => r.offline],
    ['compile s', 9, (r) => r.compileS?.toFixed(2) ?? '-'],
    ['start s', 8, (r) => r.serverStartS?.toFixed(2) ?? '-'],
    ['ReLUs', 8, (r) => r.reluCount?.toString() ?? '-'],
    ['ANDs', 10, (r) => r.andGates?.toString() ?? '-'],
    ['online pred', 11, (r) => human(r.predicted?.online)],
    ['meas', 11, (r) => same(r.measured?.online, r.predicted?.online)],
    ['offline pred', 12, (r) => human(r.predicted?.offline)],
    ['meas', 11, (r) => same(r.measured?.offline, r.predicted?.offline)],
    ['rnd', 4, (r) => r.predicted?.rounds.toString() ?? '-'],
    ['meas', 5, (r) => (r.measured ? (r.measured.rounds === r.predicted!.rounds ? '=' : String(r.measured.rounds)) : '-')],
    ['on ms/img', 10, (r) => r.onlineMsPerImage?.toFixed(1) ?? '-'],
    ['tot ms/img', 10, (r) => r.totalMsPerImage?.toFixed(1) ?? '-'],
    ['RSS MiB d/s/c', 15, (r) => (r.rssMiB ? `${r.rssMiB.dealer?.toFixed(0) ?? '-'}/${r.rssMiB.server.toFixed(0)}/${r.rssMiB.client.toFixed(0)}` : '-')],
    ['B/ReLU', 7, (r) => r.perRelu?.onlineBytes.toFixed(0) ?? '-'],
    ['xDelphi', 7, (r) => (r.perRelu ? r.perRelu.bytesVsDelphi.toFixed(2) : '-')],
    ['us/ReLU', 8, (r) => r.perRelu?.onlineUs.toFixed(2) ?? '-'],
    ['xDelphi', 7, (r) => (r.perRelu ? r.perRelu.usVsDelphi.toFixed(2) : '-')],
    ['top-1', 7, (r) => (r.accuracy ? `${r.accuracy.top1Agree}/${r.images}` : '-')],
    ['max err', 8, (r) => r.accuracy?.maxRelError.toExponential(1) ?? '-'],
    ['vs', 11, (r) => r.accuracy?.vs ?? '-'],
  ]
  return render(cols, rows)
}

/**
 * The offline phase: per row the mode's predicted and measured bytes per image, measured and
 * modelled seconds per image, the session set-up, and per ReLU against each Delphi row (our cost per
 * ReLU over Delphi's; > 1: PIC costs more). The Delphi rows follow with their published figures.
 */
function offlineTable(rows: Row[]): string {
  const o = (r: Row) => r.offlineCost
  const kb = (b: number | undefined) => (b === undefined ? '-' : (b / 1000).toFixed(2))
  const x = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(2))
  const cols: Column[] = [
    ['model', 20, (r) => r.model],
    ['offline', 9, (r) => r.offline],
    ['ReLUs', 8, (r) => r.reluCount?.toString() ?? '-'],
    ['bytes pred', 10, (r) => human(o(r)?.predictedBytes)],
    ['meas', 10, (r) => same(o(r)?.measuredBytes, o(r)?.predictedBytes)],
    ['s/img', 7, (r) => (o(r) ? (o(r)!.ms / 1000).toFixed(2) : '-')],
    ['model LAN', 9, (r) => (o(r)?.modelledMs !== undefined ? (o(r)!.modelledMs! / 1000).toFixed(2) : '-')],
    ['setup ms', 8, (r) => o(r)?.setupMs.toFixed(0) ?? '-'],
    ['setup B', 10, (r) => o(r)?.setupBytes.toString() ?? '-'],
    ['pred', 10, (r) => o(r)?.predictedSetupBytes?.toString() ?? '-'],
    ['KB/ReLU', 7, (r) => kb(o(r)?.perRelu?.bytes)],
    ['xD32', 5, (r) => x(o(r)?.perRelu?.vsDelphi[0].bytes)],
    ['xD18', 5, (r) => x(o(r)?.perRelu?.vsDelphi[1].bytes)],
    ['us/ReLU', 7, (r) => o(r)?.perRelu?.us.toFixed(1) ?? '-'],
    ['xD32', 5, (r) => x(o(r)?.perRelu?.vsDelphi[0].us)],
    ['xD18', 5, (r) => x(o(r)?.perRelu?.vsDelphi[1].us)],
    ['top-1', 7, (r) => (r.accuracy ? `${r.accuracy.top1Agree}/${r.images}` : '-')],
    ['max err', 8, (r) => r.accuracy?.maxRelError.toExponential(1) ?? '-'],
    ['vs', 11, (r) => r.accuracy?.vs ?? '-'],
  ]
  // Delphi's rows under the same columns: published totals, their per-ReLU figures, nothing measured here
  const delphi = DELPHI_OFFLINE.map((d) =>
    cols.map(([h], i) => {
      if (i === 0) return d.name
      return { offline: 'published', ReLUs: String(d.relus), meas: `${(d.bytes / 1e9).toFixed(2)} GB`, 's/img': d.seconds.toFixed(2), 'KB/ReLU': kb(d.bytesPerRelu), 'us/ReLU': d.usPerRelu.toFixed(1) }[h] ?? ''
    }),
  )
  return render(cols, rows, delphi)
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
    for (const s of specs)
      for (const mode of modes) {
        say(`${s.name} (${s.family}, ${s.images} image(s), offline ${mode}, limit ${modelTimeoutMs / 60_000} min)`)
        rows.push(await bounded(s, mode, tmp))
      }
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  console.log(
    `MPC at scale: server and client (and with --offline dealer the dealer) as separate pic processes on loopback TCP (127.0.0.1), Node ${process.version}; per image; ` +
      `bytes and rounds predicted by the schedule and measured by pic query ('=' when equal; offline predicted for the row's mode); start s = pic serve until listening; ` +
      `RSS = peak of dealer/server/client; per garbled ReLU against Delphi's ResNet-32 (${DELPHI.bytesPerRelu.toFixed(0)} B, ${DELPHI.usPerRelu.toFixed(1)} us online); ` +
      `max err = largest logit error / max(1, max |reference|)\n`,
  )
  console.log(table(rows))
  console.log(
    `\nOffline phase per image: bytes predicted (two-party: schedule twoParty.bytes.total; dealer: bytes.offline) and measured ('=' when equal); ` +
      `s/img measured (latencyMs.offlinePerImage) and modelled (twoParty.latencyMs.LAN); session setup (latencyMs.setup, bytes.setup; pred = twoParty.setupBytes, without hello/acceptance/summary); ` +
      `per ReLU: KB = 1000 B, x = ours / Delphi's per ReLU (D32: ResNet-32, D18: ResNet-18, both rows below)\n`,
  )
  console.log(offlineTable(rows))
  const r18 = rows.find((r) => r.model === 'resnet18_cifar' && r.reluCount !== undefined)
  if (r18 && r18.reluCount !== DELPHI_OFFLINE[1].relus)
    console.log(`\nnote: resnet18_cifar has ${r18.reluCount} ReLUs, Delphi's ResNet-18 row is taken at ${DELPHI_OFFLINE[1].relus}`)
  say(`finished in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  if (args.includes('--json')) {
    mkdirSync(OUT, { recursive: true })
    const file = path.join(OUT, 'scale.json')
    writeFileSync(file, JSON.stringify({ images, cifarImages, offline: modes, delphi: DELPHI, delphiOffline: DELPHI_OFFLINE, rows }, null, 1) + '\n')
    console.log(`\nwrote ${path.relative(ROOT, file)}`)
  }
  if (rows.some((r) => r.error)) process.exitCode = 1
}

await main()
