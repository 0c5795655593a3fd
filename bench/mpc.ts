/**
 * MPC benchmark. For each digits fixture with ReLUs, the all-ReLU network (garbled circuits) against
 * its polynomial variants (hermite:2 and OLA, Beaver products), plus the fixtures that are
 * polynomial by training (AESPA, PolyKervNet, square) against the all-ReLU CNN of the same shape:
 * predicted online bytes, rounds and LAN/WAN latency from the cost model, and the same measured on
 * loopback (dealer, server and client over real TCP in this process), with top-1 accuracy on the
 * images run (acc: against the labels; =IR and err IR: top-1 agreement and largest logit error
 * against the float64 interpreter on the same compiled graph). Then ReLU counts and predicted costs of ResNet-18 and VGG-16 shaped CIFAR models
 * (32x32, built with the IR builder) with ReLU and with a degree-2 polynomial, and the all-ReLU /
 * polynomial ratios of online latency and communication (AESPA reports 42.1x and 28.3x on Delphi).
 * Last, garbling and evaluation speed of the backend's ReLU circuit on one layer (AND gates per
 * second, one thread) against about 4.8 M AND/s per core natively and 3.3 M in WebAssembly (mpz),
 * and the bandwidth its tables need at that rate (32 bytes per AND gate); bench/gc.ts has the full table.
 *
 *   npx vite-node bench/mpc.ts                 (20 test images per variant)
 *   npx vite-node bench/mpc.ts -- --images 5   (fewer images)
 *   npx vite-node bench/mpc.ts -- --quick      (5 images, no OLA)
 *   npx vite-node bench/mpc.ts -- --json       (also write bench/out/mpc.json)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { defaultParams } from '../backends/mpc/cost.js'
import { encodeLabels, evaluate, garble, getWindowCircuit, toBits } from '../backends/mpc/gc.js'
import { lowerMpc, mpcBackend, runDealer, runQuery, runServe, type MpcSchedule } from '../backends/mpc/index.js'
import { freshSeed, Prg } from '../backends/mpc/ring.js'
import { readNpy } from '../compiler/npy.js'
import { importModel } from '../compiler/onnx-import.js'
import { GraphBuilder } from '../ir/builder.js'
import { run1 } from '../ir/interpret.js'
import type { Graph } from '../ir/graph.js'
import { maxAbsDiff, tensor, type Tensor } from '../ir/tensor.js'
import { argmax, top1Agreement } from '../passes/ola.js'
import { passContext, runPipeline } from '../passes/pass.js'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const nImages = Number(args[args.indexOf('--images') + 1]) || (quick ? 5 : 20)
const DIGITS = 'test/fixtures/digits'

interface Row {
  model: string
  variant: string
  reluCount: number
  comparisons: number
  triples: number
  rounds: number
  predicted: { online: number; offline: number; lanMs: number; wanMs: number }
  /** Online bytes of the garbled layers per garbled ReLU (labels, returned masks, frames). */
  gcBytesPerRelu?: number
  measured?: { online: number; offline: number; rounds: number; onlineMs: number; totalMs: number; accuracy: number; agreeIr: number; maxErrIr: number }
}

const calib = readNpy(`${DIGITS}/calib_x.npy`)
const testX = readNpy(`${DIGITS}/test_x.npy`)
const testY = readNpy(`${DIGITS}/test_y.npy`)

function compile(name: string, approx?: string): Graph {
  const g = importModel(readFileSync(`${DIGITS}/${name}.onnx`), { file: `${name}.onnx` })
  const options = approx ? { approx } : {}
  const cx = passContext(options, { calib, log: () => {} })
  return runPipeline(g, mpcBackend.pipeline(options), cx)
}

function perRelu(s: MpcSchedule): number | undefined {
  const gc = s.layers.filter((l) => l.kind === 'gc' && l.reluCount > 0)
  const relus = gc.reduce((a, l) => a + l.reluCount, 0)
  return relus ? gc.reduce((a, l) => a + l.bytes.online, 0) / relus : undefined
}

function predicted(s: MpcSchedule): Row['predicted'] {
  return { online: s.bytes.online, offline: s.bytes.offline, lanMs: s.latencyMs.LAN, wanMs: s.latencyMs.WAN }
}

async function measure(g: Graph, s: MpcSchedule): Promise<Row['measured']> {
  const dealer = await runDealer({ port: 0 })
  const server = await runServe(g, s, { port: 0, dealer: `127.0.0.1:${dealer.port}` })
  try {
    const x: Tensor = { dtype: testX.dtype, shape: [nImages, ...testX.shape.slice(1)], data: testX.data.slice(0, nImages * 64) }
    const { output, report } = await runQuery(s, x, { connect: `127.0.0.1:${server.port}`, dealer: `127.0.0.1:${dealer.port}` })
    const plain = run1(g, x)
    const top = argmax(output)
    const right = top.filter((v, i) => v === testY.data[i]).length
    return {
      online: report.perImage.bytes.online,
      offline: report.perImage.bytes.offline,
      rounds: report.perImage.rounds,
      onlineMs: report.latencyMs.onlinePerImage,
      totalMs: report.latencyMs.perImage,
      accuracy: right / nImages,
      agreeIr: top1Agreement(output, plain),
      maxErrIr: maxAbsDiff(plain, output),
    }
  } finally {
    await server.close()
    await dealer.close()
  }
}

async function variant(model: string, name: string, approx?: string): Promise<Row> {
  const g = compile(model, approx)
  const s = lowerMpc(g)
  const row: Row = {
    model, variant: name, reluCount: s.reluCount, comparisons: s.comparisons, triples: s.triples, rounds: s.rounds, predicted: predicted(s), gcBytesPerRelu: perRelu(s),
  }
  row.measured = await measure(g, s)
  return row
}

const kb = (b: number) => (b / 1024).toFixed(1)

function table(rows: Row[]): string {
  const head = `${'model'.padEnd(20)} ${'variant'.padEnd(12)} ${'ReLUs'.padStart(6)} ${'cmp'.padStart(5)} ${'triples'.padStart(7)} ${'rnd'.padStart(4)} ${'pred KiB'.padStart(9)} ${'meas KiB'.padStart(9)} ${'meas rnd'.padStart(8)} ${'LAN ms'.padStart(7)} ${'WAN ms'.padStart(7)} ${'loop ms'.padStart(8)} ${'offl KiB'.padStart(9)} ${'acc'.padStart(5)} ${'=IR'.padStart(5)} ${'err IR'.padStart(8)}`
  const lines = rows.map((r) => {
    const m = r.measured
    return `${r.model.padEnd(20)} ${r.variant.padEnd(12)} ${String(r.reluCount).padStart(6)} ${String(r.comparisons).padStart(5)} ${String(r.triples).padStart(7)} ${String(r.rounds).padStart(4)} ${kb(r.predicted.online).padStart(9)} ${(m ? kb(m.online) : '-').padStart(9)} ${(m ? String(m.rounds) : '-').padStart(8)} ${r.predicted.lanMs.toFixed(2).padStart(7)} ${r.predicted.wanMs.toFixed(1).padStart(7)} ${(m ? m.onlineMs.toFixed(1) : '-').padStart(8)} ${kb(m ? m.offline : r.predicted.offline).padStart(9)} ${(m ? m.accuracy.toFixed(2) : '-').padStart(5)} ${(m ? m.agreeIr.toFixed(2) : '-').padStart(5)} ${(m ? m.maxErrIr.toExponential(1) : '-').padStart(8)}`
  })
  return [head, ...lines].join('\n')
}

function ratios(base: Row, other: Row): string {
  const f = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(1)}x` : '-')
  const m = base.measured && other.measured ? `, loopback online ${f(base.measured.onlineMs, other.measured.onlineMs)}` : ''
  return `${base.model}/${base.variant} vs ${other.model}/${other.variant}: communication ${f(base.predicted.online, other.predicted.online)}, LAN ${f(base.predicted.lanMs, other.predicted.lanMs)}, WAN ${f(base.predicted.wanMs, other.predicted.wanMs)}${m}`
}

/**
 * CIFAR-shaped networks at 32x32 with zero weights (the schedule depends on shapes only); the
 * polynomial variant uses Delphi's quadratic and, in VGG, average instead of max pooling.
 */
function cifar(kind: 'resnet18' | 'vgg16', act: 'relu' | 'poly'): Graph {
  const b = new GraphBuilder(`${kind}-cifar`, 13, { N: 1 })
  let id = 0
  const conv = (x: string, cin: number, cout: number, k: number, stride: number): string => {
    const w = b.constant(`w${id++}`, tensor('float32', [cout, cin, k, k])).name
    const p = (k - 1) >> 1
    return b.add('Conv', [x, w], { kernel: [k, k], strides: [stride, stride], pads: [p, p, p, p], dilations: [1, 1], autoPad: 'NOTSET', ceil: false, group: 1 }).name
  }
  const activation = (x: string) =>
    act === 'relu'
      ? b.add('Relu', [x], {}).name
      : b.add('Poly', [x], { basis: 'power', axis: 1, coeffs: [[0.1992, 0.5002, 0.1997]], shift: [0], scale: [1] }).name
  b.input('input', 'float32', ['N', 3, 32, 32])
  let x = 'input'
  let cin = 3
  if (kind === 'resnet18') {
    x = activation(conv(x, 3, 64, 3, 1))
    cin = 64
    ;[64, 128, 256, 512].forEach((width, li) => {
      for (let bi = 0; bi < 2; bi++) {
        const stride = bi === 0 && li > 0 ? 2 : 1
        const y = conv(activation(conv(x, cin, width, 3, stride)), width, width, 3, 1)
        const skip = stride !== 1 || cin !== width ? conv(x, cin, width, 1, stride) : x
        x = activation(b.add('Add', [y, skip], {}).name)
        cin = width
      }
    })
    x = b.add('GlobalAveragePool', [x], {}).name
  } else {
    for (const block of [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]) {
      for (const c of block) {
        x = activation(conv(x, cin, c, 3, 1))
        cin = c
      }
      const pool = { kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], dilations: [1, 1], autoPad: 'NOTSET', ceil: false, countIncludePad: false }
      x = b.add(act === 'relu' ? 'MaxPool' : 'AveragePool', [x], pool).name
    }
  }
  x = b.add('Flatten', [x], { axis: 1 }).name
  const w = b.constant(`w${id++}`, tensor('float32', [10, cin])).name
  b.add('Gemm', [x, w], { alpha: 1, beta: 1, transA: 0, transB: 1 }, { name: 'logits' })
  return b.build(['logits'])
}

/** Garble and evaluate one layer of the backend's ReLU circuit; AND gates per second. */
function gcRates(n: number): { ands: number; garble: number; evaluate: number } {
  const p = defaultParams()
  const circ = getWindowCircuit({ k: 1, inBits: p.gcBits, shift: p.weightFracBits, relu: true, outBits: p.ringBits })
  const prg = new Prg(freshSeed(), 'bench')
  const [a, b, u] = [prg.ring(n), prg.ring(n), prg.ring(n)]
  let best = { garble: Infinity, evaluate: Infinity }
  for (let rep = 0; rep < 3; rep++) {
    const t0 = performance.now()
    const gb = garble(circ, n, freshSeed(), rep)
    const t1 = performance.now()
    const la = encodeLabels(gb, n, circ.inputsA, toBits(a, p.gcBits))
    const lb = encodeLabels(gb, n, circ.inputsB, toBits(b, p.gcBits))
    const lu = encodeLabels(gb, n, circ.inputsU, toBits(u, p.ringBits))
    const t2 = performance.now()
    evaluate(circ, n, la, lb, lu, gb.tables, gb.decode, rep, gb.hashKey)
    const t3 = performance.now()
    best = { garble: Math.min(best.garble, t1 - t0), evaluate: Math.min(best.evaluate, t3 - t2) }
  }
  const ands = circ.ands * n
  return { ands, garble: ands / (best.garble / 1000), evaluate: ands / (best.evaluate / 1000) }
}

async function main(): Promise<void> {
  const rows: Row[] = []
  const say = (r: Row) => {
    rows.push(r)
    process.stderr.write(`  ${r.model} ${r.variant}: done\n`)
  }
  console.log(`MPC benchmark: ${nImages} test image(s) per variant over loopback TCP; LAN = 3 Gbps / 0.3 ms per round, WAN = 400 Mbps / 40 ms per round\n`)
  const reluModels = ['mlp_relu', 'cnn_bn_relu_maxpool', 'senet_partial_relu', 'resnet8']
  const variants: [string, string | undefined][] = [['all-ReLU', undefined], ['hermite:2', 'hermite:2']]
  if (!quick) variants.push(['ola', 'ola'])
  for (const m of reluModels) for (const [name, spec] of variants) say(await variant(m, name, spec))
  for (const [m, name] of [['aespa_cnn', 'AESPA'], ['pkn_cnn', 'PolyKervNet'], ['cnn_square', 'square']]) say(await variant(m, name))
  console.log(table(rows))
  console.log('\nall-ReLU / polynomial (predicted communication and latency; measured loopback online time):')
  const find = (m: string, v: string) => rows.find((r) => r.model === m && r.variant === v)
  for (const m of reluModels) for (const [name] of variants.slice(1)) console.log('  ' + ratios(find(m, 'all-ReLU')!, find(m, name)!))
  for (const v of ['AESPA', 'PolyKervNet', 'square']) {
    const other = rows.find((r) => r.variant === v)!
    console.log('  ' + ratios(find('cnn_bn_relu_maxpool', 'all-ReLU')!, other))
  }
  const relu = rows.filter((r) => r.variant === 'all-ReLU' && r.measured && r.reluCount > 0)
  console.log('\nmeasured / predicted online bytes per image: ' + rows.map((r) => (r.measured!.online / r.predicted.online).toFixed(4)).join(' '))
  console.log('rounds equal: ' + rows.every((r) => r.measured!.rounds === r.rounds))
  for (const r of relu) console.log(`${r.model}: ${r.gcBytesPerRelu!.toFixed(0)} online bytes per garbled ReLU (Delphi: 1,184)`)

  console.log('\nCIFAR-shaped models at 32x32 (predicted per inference):')
  const big: Row[] = []
  for (const kind of ['resnet18', 'vgg16'] as const)
    for (const act of ['relu', 'poly'] as const) {
      const t0 = performance.now()
      const s = lowerMpc(cifar(kind, act))
      big.push({ model: kind, variant: act === 'relu' ? 'all-ReLU' : kind === 'vgg16' ? 'poly2+avg' : 'poly2', reluCount: s.reluCount, comparisons: s.comparisons, triples: s.triples, rounds: s.rounds, predicted: predicted(s) })
      process.stderr.write(`  ${kind} ${act}: lowered in ${(performance.now() - t0).toFixed(0)} ms\n`)
    }
  console.log(table(big))
  for (const kind of ['resnet18', 'vgg16']) {
    const a = big.find((r) => r.model === kind && r.variant === 'all-ReLU')!
    const p = big.find((r) => r.model === kind && r.variant !== 'all-ReLU')!
    console.log('  ' + ratios(a, p) + ` (${a.reluCount} ReLUs, online ${(a.predicted.online / 2 ** 20).toFixed(1)} MiB vs ${(p.predicted.online / 2 ** 20).toFixed(1)} MiB)`)
  }
  const n = 16384
  const g = gcRates(n)
  const m = (v: number) => `${(v / 1e6).toFixed(2)} M AND/s`
  console.log(`\ngarbled ReLU layer (${n} instances, ${g.ands} AND gates, best of 3, one thread):`)
  console.log(`  garble   ${m(g.garble)} (${(g.garble / 4.8e6).toFixed(2)}x native 4.8 M, ${(g.garble / 3.3e6).toFixed(2)}x mpz WebAssembly 3.3 M); tables at this rate need ${((g.garble * 32 * 8) / 1e9).toFixed(2)} Gbit/s`)
  console.log(`  evaluate ${m(g.evaluate)} (${(g.evaluate / 4.8e6).toFixed(2)}x native, ${(g.evaluate / 3.3e6).toFixed(2)}x mpz WebAssembly)`)
  if (args.includes('--json')) {
    mkdirSync('bench/out', { recursive: true })
    writeFileSync('bench/out/mpc.json', JSON.stringify({ images: nImages, digits: rows, cifar: big }, null, 1))
    console.log('\nwrote bench/out/mpc.json')
  }
}

await main()
