/**
 * Compile-speed benchmark. Builds ResNet-18 and ResNet-50 shaped models (224x224 input, random
 * weights, Conv without bias + BatchNormalization as torchvision exports them) with the ONNX writer,
 * saves them to a temporary folder and, in a fresh process per model, times what `pic compile
 * --backend ir` does: read the file, import (protobuf decode included), run the ir pipeline and lower
 * to IR JSON. The floor is a native protobuf decode of the same file: bench/native/decode.cc, built
 * here with protoc, g++ and the C++ protobuf library when they are installed (Debian:
 * protobuf-compiler libprotobuf-dev), reads the file and parses it as a ModelProto, copying the weights
 * out as a native ONNX loader does. protobufjs's own decode (which returns the weights as views into the
 * file buffer) and a protobufjs decode that copies them are shown too. When dist/ is built, the real
 * CLI is timed as well (wall time and peak RSS). Then evaluation at batch 1 (and fmnist32/resnet20 on the
 * test fixture's 32 images as one batch): the float64 interpreter, the interpreter with onnxruntime's kernels (the default for
 * calibration, OLA and eval), and onnxruntime-node itself on the whole model, one thread each, with
 * GFLOP/s and the ratio to onnxruntime.
 *
 *   npx vite-node bench/compile.ts               (both models)
 *   npx vite-node bench/compile.ts -- --quick    (ResNet-18 only)
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { irBackend } from '../backends/ir/index.js'
import { writeModel } from '../compiler/onnx-export.js'
import { importModel } from '../compiler/onnx-import.js'
import { onnx } from '../compiler/onnx-tensor.js'
import type { Graph } from '../ir/graph.js'
import { interpret } from '../ir/interpret.js'
import { loadModel } from '../compiler/model.js'
import { readNpy } from '../compiler/npy.js'
import { ortAccelerator } from '../compiler/ort.js'
import { withBatchSize } from '../ir/builder.js'
import { createRequire } from 'node:module'
import { tensor, type Tensor } from '../ir/tensor.js'
import { passContext, runPipeline } from '../passes/pass.js'
import { PIPELINES } from '../passes/pipelines.js'
import { flops, random, resnet } from './models.js'

interface Measure {
  mb: number
  decode: number
  owned: number
  read: number
  import: number
  passes: number
  lower: number
  total: number
  rss: number
}

const time = <T>(f: () => T): [T, number] => {
  const t0 = performance.now()
  const v = f()
  return [v, performance.now() - t0]
}

/** A protobufjs decode that owns its bytes, as a native parser does: the weights are copied out. */
function ownedDecode(bytes: Uint8Array): onnx.ModelProto {
  const m = onnx.ModelProto.decode(bytes)
  for (const t of m.graph?.initializer ?? []) if (t.rawData) t.rawData = new Uint8Array(t.rawData)
  return m
}

/**
 * Runs in a fresh process, as the CLI does: the phases of `pic compile --backend ir` on one file
 * once (the weights land in fresh memory, so the page faults a real run pays are counted); the
 * protobufjs decodes are the best of five.
 */
function measure(file: string): Measure {
  const [bytes, read] = time(() => readFileSync(file))
  let decode = Infinity
  let owned = Infinity
  for (let i = 0; i < 5; i++) {
    decode = Math.min(decode, time(() => onnx.ModelProto.decode(bytes))[1])
    owned = Math.min(owned, time(() => ownedDecode(bytes))[1])
  }
  const [g, imp] = time(() => importModel(bytes, { file, baseDir: path.dirname(file) }))
  const [compiled, passes] = time(() => runPipeline(g, PIPELINES.ir({}), passContext()))
  const [, lower] = time(() => irBackend.lower(compiled, passContext()))
  const total = read + imp + passes + lower
  return { mb: statSync(file).size / 2 ** 20, decode, owned, read, import: imp, passes, lower, total, rss: process.resourceUsage().maxRSS / 1024 }
}

/**
 * Best of three fresh processes running `measure` (other work only ever adds time): each phase's best,
 * and the best total any one run reached (not the sum of the phases' bests, which no run achieved).
 */
function measureBest(file: string): Measure {
  const runs: Measure[] = []
  for (let rep = 0; rep < 3; rep++) {
    const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1], import.meta.filename], {
      encoding: 'utf8',
      env: { ...process.env, PIC_BENCH_MEASURE: file },
    })
    if (child.status !== 0) throw new Error(`measuring ${file} failed:\n${child.stderr}`)
    runs.push(JSON.parse(child.stdout.trim().split('\n').pop()!) as Measure)
  }
  const best = (k: keyof Measure) => Math.min(...runs.map((r) => r[k]))
  return { mb: runs[0].mb, decode: best('decode'), owned: best('owned'), read: best('read'), import: best('import'), passes: best('passes'), lower: best('lower'), total: best('total'), rss: Math.max(...runs.map((r) => r.rss)) }
}

/** Build bench/native/decode.cc into `dir`; undefined (with the reason printed) when the tools are missing. */
function buildNative(dir: string): string | undefined {
  const src = path.join(import.meta.dirname, 'native')
  const exe = path.join(dir, 'native-decode')
  const steps: [string, string[]][] = [
    ['protoc', [`--proto_path=${src}`, `--cpp_out=${dir}`, path.join(src, 'onnx-subset.proto')]],
    ['g++', ['-O2', '-std=c++17', `-I${dir}`, path.join(src, 'decode.cc'), path.join(dir, 'onnx-subset.pb.cc'), '-lprotobuf', '-o', exe]],
  ]
  for (const [cmd, args] of steps) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' })
    if (r.status !== 0) {
      console.log(`native floor not built (${cmd}: ${r.error?.message ?? r.stderr.trim().split('\n')[0]}); needs protoc, g++ and libprotobuf-dev`)
      return undefined
    }
  }
  return exe
}

/** Best-of-five native read and parse of `file`, in ms. */
function runNative(exe: string, file: string): { read: number; parse: number } {
  const r = spawnSync(exe, [file], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`native decode of ${file} failed:\n${r.stderr}`)
  return JSON.parse(r.stdout) as { read: number; parse: number }
}

/** Wall time and peak RSS of the built CLI compiling `file` (undefined when dist/ is not built). */
function runCli(file: string, dir: string): { ms: number; mb: number } | undefined {
  const bin = path.join(import.meta.dirname, '../bin/pic.js')
  if (!existsSync(path.join(import.meta.dirname, '../dist/compiler/cli.js'))) return undefined
  const args = [bin, 'compile', file, '--backend', 'ir', '-o', path.join(dir, 'out.json')]
  const timed = existsSync('/usr/bin/time')
  const t0 = performance.now()
  const r = timed ? spawnSync('/usr/bin/time', ['-f', 'maxrss %M', process.execPath, ...args], { encoding: 'utf8' }) : spawnSync(process.execPath, args, { encoding: 'utf8' })
  const ms = performance.now() - t0
  if (r.status !== 0) throw new Error(`pic compile failed:\n${r.stderr}`)
  const rss = /maxrss (\d+)/.exec(r.stderr)
  return { ms, mb: rss ? Number(rss[1]) / 1024 : NaN }
}

/** Median of `n` timed runs after one warm-up, in ms. */
async function median(n: number, f: () => unknown): Promise<number> {
  await f()
  const ts: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await f()
    ts.push(performance.now() - t0)
  }
  return ts.sort((a, b) => a - b)[n >> 1]
}

/**
 * Evaluation speed: the float64 interpreter, the interpreter with onnxruntime's kernels for Conv,
 * Gemm and MatMul, and onnxruntime-node on the whole model (its public API, one intra-op thread).
 */
async function evaluators(models: Graph[]): Promise<void> {
  const accel = ortAccelerator()
  let ort: { InferenceSession: { create(b: Uint8Array, o: object): Promise<{ run(f: object): Promise<Record<string, unknown>> }> }; Tensor: new (t: string, d: Float32Array, s: number[]) => object } | undefined
  try {
    ort = createRequire(import.meta.url)('onnxruntime-node')
  } catch {
    console.log('onnxruntime-node is not installed: only the float64 interpreter is timed')
  }
  const F = path.join(import.meta.dirname, '../test/fixtures/fmnist32')
  const cases: { label: string; g: Graph; x: Tensor; per: number }[] = models.map((g) => ({ label: `${g.name} batch 1`, g, x: tensor('float32', [1, 3, 224, 224], random(3 * 224 * 224, 1, 7)), per: 1 }))
  if (existsSync(path.join(F, 'resnet20.onnx'))) {
    const test = readNpy(path.join(F, 'test_x.npy'))
    const B = Math.min(64, test.shape[0])
    cases.push({ label: `fmnist32 resnet20 batch ${B}`, g: withBatchSize(loadModel(path.join(F, 'resnet20.onnx')), B)!, x: { ...test, shape: [B, ...test.shape.slice(1)], data: test.data.slice(0, B * (test.data.length / test.shape[0])) }, per: B })
  }
  const rows = ['model                        GFLOP   float64 ms  GFLOP/s  x ort   +ort kernels ms  GFLOP/s  x ort   onnxruntime ms  GFLOP/s']
  for (const c of cases) {
    const f = flops(c.g)
    const runs = c.per > 1 ? 3 : 5
    const exact = await median(c.per > 1 ? 1 : 3, () => interpret(c.g, [c.x]))
    const fast = accel ? await median(runs, () => interpret(c.g, [c.x], { accel })) : NaN
    let whole = NaN
    if (ort) {
      const s = await ort.InferenceSession.create(writeModel(c.g), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' })
      const feeds = { [c.g.nodes.find((n) => n.op === 'Input')!.name]: new ort.Tensor('float32', Float32Array.from(c.x.data), [...c.x.shape]) }
      whole = await median(runs, () => s.run(feeds))
    }
    const gf = (ms: number) => (f / 1e6 / ms).toFixed(2).padStart(7)
    const ratio = (ms: number) => (ms / whole).toFixed(1).padStart(5)
    rows.push(`${c.label.padEnd(28)} ${(f / 1e9).toFixed(2).padStart(5)}  ${exact.toFixed(0).padStart(10)}  ${gf(exact)}  ${ratio(exact)}  ${fast.toFixed(0).padStart(15)}  ${gf(fast)}  ${ratio(fast)}  ${whole.toFixed(1).padStart(14)}  ${gf(whole)}`)
  }
  console.log(rows.join('\n'))
  console.log('(median of 5 runs, 3 for the batch of 32 and 1 for its float64 run, after a warm-up; one thread each; x ort = ms / onnxruntime ms; +ort kernels = the interpreter with onnxruntime-node\'s Conv, Gemm and MatMul, what calibration, OLA and eval use)')
}

async function main(): Promise<void> {
  const target = process.env.PIC_BENCH_MEASURE
  if (target) {
    process.stdout.write(JSON.stringify(measure(target)) + '\n')
    return
  }
  const quick = process.argv.includes('--quick')
  const dir = mkdtempSync(path.join(tmpdir(), 'pic-bench-'))
  try {
    const native = buildNative(dir)
    const rows: string[] = []
    const fmt = (v: number | undefined, d = 0) => (v === undefined ? '-' : v.toFixed(d)).padStart(8)
    const cols = ['MB', 'pbjs', 'owned', 'n.read', 'n.parse', 'read', 'import', 'passes', 'lower', 'total', 'x nat', 'x n.ps', 'x r+o', 'RSS MB', 'cli ms', 'cli MB']
    rows.push(`${'model'.padEnd(10)}${cols.map((c) => c.padStart(8)).join('')}`)
    let r18: Graph | undefined
    for (const depth of quick ? ([18] as const) : ([18, 50] as const)) {
      const g = resnet(depth)
      if (depth === 18) r18 = g
      const file = path.join(dir, `resnet${depth}.onnx`)
      writeFileSync(file, writeModel(g))
      const m = measureBest(file)
      const n = native ? runNative(native, file) : undefined
      const cli = runCli(file, dir)
      rows.push(
        `${`resnet${depth}`.padEnd(10)}${fmt(m.mb, 1)}${fmt(m.decode, 1)}${fmt(m.owned)}${fmt(n?.read)}${fmt(n?.parse, 1)}${fmt(m.read)}${fmt(m.import)}${fmt(m.passes)}${fmt(m.lower)}${fmt(m.total)}` +
          `${fmt(n && m.total / (n.read + n.parse), 1)}${fmt(n && m.total / n.parse, 1)}${fmt(m.total / (m.read + m.owned), 1)}${fmt(m.rss)}${fmt(cli?.ms)}${fmt(cli?.mb)}`,
      )
      console.log(rows.join('\n'))
      rows.length = 0
    }
    console.log(
      '(ms, best of 3 fresh processes (native and protobufjs decodes: best of 5); pbjs = protobufjs decode, weights left as views; owned = protobufjs decode copying the weights out;\n' +
        ' n.read, n.parse = native C++ protobuf: read the file, parse it as a ModelProto; import includes the protobufjs decode;\n' +
        ' total = read + import + passes + lower of the best run (the phases: the best of each over the runs); x nat = total / (n.read + n.parse); x n.ps = total / n.parse; x r+o = total / (read + owned);\n' +
        ' RSS = peak of the measuring process; cli = `node bin/pic.js compile FILE --backend ir -o OUT` wall time and peak RSS, when dist/ is built)',
    )
    evaluators(quick ? [r18!] : [r18!, resnet(50)])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

void main()
