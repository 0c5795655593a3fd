/**
 * Random-weight CIFAR-shaped networks at 32x32x3, written as real ONNX files (opset 13, batch `N`
 * symbolic, input `input`, output `logits`, BatchNormalization kept as nodes like a PyTorch export):
 *
 * - ResNet-20 (He et al.): 3x3 stem conv to 16 channels, 3 stages of 16/32/64 channels with 3 basic
 *   blocks each (stride 2 at the first block of stages 2 and 3), 1x1 projection shortcuts (conv + BN)
 *   where the shape changes; 188,416 ReLUs.
 * - ResNet-18, CIFAR variant: 3x3 stem conv to 64 channels at stride 1, no max pooling, 4 stages of
 *   64/128/256/512 channels with 2 basic blocks each, 1x1 projection shortcuts; 557,056 ReLUs.
 *
 * Both: BatchNormalization after every conv, ReLU, global average pooling, Flatten, Gemm to 10
 * classes. Conv weights are He-normal (std sqrt(2 / fan_in)) from a seeded xorshift32 + Box-Muller
 * generator; each BatchNorm's running variance is the variance its conv output is expected to have
 * (2 E[x^2] of the conv input, tracked through the network) times a random factor in [0.75, 1.25],
 * its running mean a small random offset, gamma in [0.5, 1], beta in [-0.1, 0.1]; the second BN of
 * each block has gamma halved, so residual sums grow slowly. On random normal images (the scale of
 * the fmnist32 fixtures' normalized inputs) every activation stays within a few tens (far below the
 * MPC backend's 2^14 bound): `npx vite-node bench/cifar.ts` prints the largest one.
 *
 *   npx vite-node bench/cifar.ts [-- --out DIR]   (default bench/out; git-ignored)
 *
 * prints the files, their parameter and ReLU counts (from `pic inspect --json`, asserting 188,416 and
 * 557,056) and the largest |activation| on two random images. `writeCifarModels(dir)` is for reuse: set
 * `globalThis.PIC_BENCH_LIBRARY = true` and import this module dynamically (see bench/scale.ts).
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeModel } from '../compiler/onnx-export.js'
import { GraphBuilder } from '../ir/builder.js'
import type { Graph } from '../ir/graph.js'
import { interpret } from '../ir/interpret.js'
import { tensor, type Tensor } from '../ir/tensor.js'

export const CIFAR_RELUS = { resnet20: 188_416, resnet18: 557_056 } as const
export type CifarModel = keyof typeof CIFAR_RELUS

/** A seeded generator: uniform values in (0, 1) (xorshift32) and standard normal ones (Box-Muller on the same stream). */
export function rng(seed: number): { uniform: () => number; normal: () => number } {
  let s = seed >>> 0 || 1
  const uniform = () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return ((s >>> 0) + 0.5) / 2 ** 32
  }
  let spare: number | undefined
  const normal = () => {
    if (spare !== undefined) {
      const v = spare
      spare = undefined
      return v
    }
    const r = Math.sqrt(-2 * Math.log(uniform()))
    const t = 2 * Math.PI * uniform()
    spare = r * Math.sin(t)
    return r * Math.cos(t)
  }
  return { uniform, normal }
}

type Rng = ReturnType<typeof rng>

/** `n` random normal values times `std` plus `mean`, rounded to float32. */
function fill(n: number, rnd: Rng, std: number, mean = 0): Float64Array {
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.fround(mean + std * rnd.normal())
  return out
}

/** `n` uniform values in [lo, hi), rounded to float32. */
function uniform(n: number, rnd: Rng, lo: number, hi: number): Float64Array {
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.fround(lo + (hi - lo) * rnd.uniform())
  return out
}

/** A CIFAR ResNet (basic blocks, projection shortcuts) with seeded random weights. */
export function cifarResnet(kind: CifarModel, seed = kind === 'resnet20' ? 20 : 18): Graph {
  const [stem, widths, blocks] = kind === 'resnet20' ? [16, [16, 32, 64], 3] : [64, [64, 128, 256, 512], 2]
  const rnd = rng(seed)
  const b = new GraphBuilder(`${kind}_cifar`, 13, { N: 1 })
  /**
   * Conv (no bias) + BatchNormalization. `q` is the expected E[x^2] of the conv input; returns the
   * value and the expected E[y^2] of the BN output (gamma^2 + beta^2, the normalized part having unit
   * variance).
   */
  const convBn = (x: string, q: number, name: string, cin: number, cout: number, k: number, stride: number, gammaScale = 1): [string, number] => {
    const fanIn = cin * k * k
    const w = b.constant(`${name}.weight`, tensor('float32', [cout, cin, k, k], fill(cout * fanIn, rnd, Math.sqrt(2 / fanIn)))).name
    const p = (k - 1) >> 1
    const y = b.add('Conv', [x, w], { kernel: [k, k], strides: [stride, stride], pads: [p, p, p, p], dilations: [1, 1], autoPad: 'NOTSET', ceil: false, group: 1 }, { name: `${name}/Conv` }).name
    const bn = name.replace(/conv(\d*)$/, 'bn$1').replace(/shortcut\.0$/, 'shortcut.1')
    const expected = 2 * q // He-normal: Var(conv) = fan_in * (2 / fan_in) * E[x^2]
    const gamma = uniform(cout, rnd, 0.5 * gammaScale, gammaScale)
    const beta = uniform(cout, rnd, -0.1, 0.1)
    const vari = uniform(cout, rnd, 0.75, 1.25).map((v) => Math.fround(v * expected))
    const mean = fill(cout, rnd, 0.05 * Math.sqrt(expected))
    const c = (suffix: string, data: Float64Array) => b.constant(`${bn}.${suffix}`, tensor('float32', [cout], data)).name
    const out = b.add('BatchNormalization', [y, c('weight', gamma), c('bias', beta), c('running_mean', mean), c('running_var', vari)], { epsilon: 1e-5 }, { name: `${bn}/BatchNormalization` }).name
    let q2 = 0
    for (let i = 0; i < cout; i++) q2 += (gamma[i] ** 2 + beta[i] ** 2) / cout
    return [out, q2]
  }
  const relu = (x: string, name: string) => b.add('Relu', [x], {}, { name }).name
  b.input('input', 'float32', ['N', 3, 32, 32])
  let [x, q] = convBn('input', 1, 'conv1', 3, stem, 3, 1)
  x = relu(x, 'relu/Relu')
  q /= 2 // E[relu(z)^2] = E[z^2] / 2 for z symmetric about 0
  let cin = stem
  widths.forEach((width, li) => {
    for (let bi = 0; bi < blocks; bi++) {
      const stride = bi === 0 && li > 0 ? 2 : 1
      const p = `layer${li + 1}.${bi}`
      const [h1, q1] = convBn(x, q, `${p}.conv1`, cin, width, 3, stride)
      const [h2, q2] = convBn(relu(h1, `${p}/relu/Relu`), q1 / 2, `${p}.conv2`, width, width, 3, 1, 0.5)
      let skip = x
      let qs = q
      if (stride !== 1 || cin !== width) [skip, qs] = convBn(x, q, `${p}.shortcut.0`, cin, width, 1, stride)
      x = relu(b.add('Add', [h2, skip], {}, { name: `${p}/Add` }).name, `${p}/relu_1/Relu`)
      q = (q2 + qs) / 2 // E[(h2 + skip)^2] ~ q2 + qs, halved by the ReLU (roughly: the identity skip is non-negative)
      cin = width
    }
  })
  x = b.add('GlobalAveragePool', [x], {}, { name: 'avgpool/GlobalAveragePool' }).name
  x = b.add('Flatten', [x], { axis: 1 }, { name: 'Flatten' }).name
  const fcW = b.constant('fc.weight', tensor('float32', [10, cin], fill(10 * cin, rnd, Math.sqrt(1 / cin)))).name
  const fcB = b.constant('fc.bias', tensor('float32', [10], fill(10, rnd, 0.01))).name
  b.add('Gemm', [x, fcW, fcB], { alpha: 1, beta: 1, transA: false, transB: true }, { name: 'logits' })
  return b.build(['logits'])
}

/** Write both models as ONNX into `dir`; returns their paths. */
export function writeCifarModels(dir: string): { resnet20: string; resnet18: string } {
  mkdirSync(dir, { recursive: true })
  const out = { resnet20: path.join(dir, 'resnet20_cifar.onnx'), resnet18: path.join(dir, 'resnet18_cifar.onnx') }
  for (const kind of ['resnet20', 'resnet18'] as const) writeFileSync(out[kind], writeModel(cifarResnet(kind), { file: path.basename(out[kind]), producerName: 'pic bench/cifar.ts' }))
  return out
}

/** Random normal images [k, 3, 32, 32] (float32), seeded. */
export function cifarImages(k: number, seed = 32): Tensor {
  return tensor('float32', [k, 3, 32, 32], fill(k * 3 * 32 * 32, rng(seed), 1))
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** `pic inspect FILE --json` from the built CLI. */
export function inspect(file: string): { parameters: number; reluCount: number } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/pic.js'), 'inspect', file, '--json'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`pic inspect ${file} failed (build with npx tsc -p tsconfig.json first):\n${r.stderr}`)
  return JSON.parse(r.stdout)
}

function main(): void {
  const args = process.argv.slice(2)
  const i = args.indexOf('--out')
  const dir = i >= 0 ? args[i + 1] : path.join(ROOT, 'bench/out')
  if (!existsSync(path.join(ROOT, 'dist/compiler/cli.js'))) throw new Error('build first: npx tsc -p tsconfig.json')
  const files = writeCifarModels(dir)
  const x = cifarImages(2)
  for (const kind of ['resnet20', 'resnet18'] as const) {
    const file = files[kind]
    const info = inspect(file)
    if (info.reluCount !== CIFAR_RELUS[kind]) throw new Error(`${kind}: pic inspect counts ${info.reluCount} ReLUs, expected ${CIFAR_RELUS[kind]}`)
    let largest = 0
    let where = ''
    const g = cifarResnet(kind)
    const t0 = performance.now()
    const logits = interpret(g, [x], {
      onValue: (n, v) => {
        if (n.op === 'Constant' || n.op === 'Input') return
        for (const e of v.data)
          if (Math.abs(e) > largest) {
            largest = Math.abs(e)
            where = n.name
          }
      },
    }).get(g.outputs[0])!
    const ms = performance.now() - t0
    if (!(largest < 2 ** 10)) throw new Error(`${kind}: an activation reaches ${largest} (${where})`)
    const l = [...logits.data].map((v) => v.toFixed(2)).join(' ')
    console.log(
      `${file}: ${(statSync(file).size / 2 ** 20).toFixed(2)} MiB, ${info.parameters.toLocaleString('en-US')} parameters, ${info.reluCount.toLocaleString('en-US')} ReLUs; ` +
        `largest |activation| on 2 random normal images ${largest.toFixed(2)} (${where}), interpreter ${ms.toFixed(0)} ms; logits ${l}`,
    )
  }
}

/** Set by a script that imports this module dynamically for its functions (vite-node hides which file is the entry). */
declare global {
  var PIC_BENCH_LIBRARY: boolean | undefined
}
if (!globalThis.PIC_BENCH_LIBRARY) main()
