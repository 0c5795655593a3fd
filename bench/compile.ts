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
 * CLI is timed as well (wall time and peak RSS). Then the interpreter's GFLOP/s on ResNet-18 at batch 1.
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

function main(): void {
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
    const g = r18!
    const x: Tensor = tensor('float32', [1, 3, 224, 224], random(3 * 224 * 224, 1, 7))
    const f = flops(g)
    interpret(g, [x])
    const [, ms] = time(() => interpret(g, [x]))
    console.log(`interpreter, resnet18 batch 1: ${(f / 1e9).toFixed(2)} GFLOP in ${ms.toFixed(0)} ms = ${(f / 1e6 / ms).toFixed(2)} GFLOP/s`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

main()
