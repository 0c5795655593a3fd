/**
 * Benchmark models: ResNet-18 and ResNet-50 as torchvision exports them (Conv without bias, then
 * BatchNormalization; MaxPool, Add, GlobalAveragePool, Flatten, Gemm) with seeded random weights,
 * and the floating-point operation count of a graph.
 */
import { GraphBuilder } from '../ir/builder.js'
import type { Graph } from '../ir/graph.js'
import { tensor } from '../ir/tensor.js'

/** Deterministic uniform values in [-a, a), rounded to float32. */
export function random(n: number, a: number, seed: number): Float64Array {
  let s = seed >>> 0 || 1
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    out[i] = Math.fround(((s >>> 0) / 2 ** 32 - 0.5) * 2 * a)
  }
  return out
}

/** ResNet-18 ([2,2,2,2] basic blocks) or ResNet-50 ([3,4,6,3] bottlenecks), torchvision layout. */
export function resnet(depth: 18 | 50, classes = 1000): Graph {
  const b = new GraphBuilder(`resnet${depth}`, 13, { N: 1 })
  let seed = depth
  const weight = (name: string, shape: number[], fanIn: number) => b.constant(name, tensor('float32', shape, random(shape.reduce((p, d) => p * d, 1), Math.sqrt(3 / fanIn), ++seed))).name
  const conv = (x: string, name: string, cin: number, cout: number, k: number, stride: number): string => {
    const w = weight(`${name}.weight`, [cout, cin, k, k], cin * k * k)
    const p = (k - 1) >> 1
    const y = b.add('Conv', [x, w], { kernel: [k, k], strides: [stride, stride], pads: [p, p, p, p], dilations: [1, 1], autoPad: 'NOTSET', ceil: false, group: 1 }, { name: `${name}/Conv` }).name
    const bn = name.replace('conv', 'bn').replace('downsample.0', 'downsample.1')
    const gamma = b.constant(`${bn}.weight`, tensor('float32', [cout], random(cout, 0.5, ++seed).map((v) => Math.fround(1 + v)))).name
    const beta = b.constant(`${bn}.bias`, tensor('float32', [cout], random(cout, 0.1, ++seed))).name
    const mean = b.constant(`${bn}.running_mean`, tensor('float32', [cout], random(cout, 0.1, ++seed))).name
    const vari = b.constant(`${bn}.running_var`, tensor('float32', [cout], random(cout, 0.5, ++seed).map((v) => Math.fround(1 + v)))).name
    return b.add('BatchNormalization', [y, gamma, beta, mean, vari], { epsilon: 1e-5 }, { name: `${bn}/BatchNormalization` }).name
  }
  const relu = (x: string, name: string) => b.add('Relu', [x], {}, { name }).name
  b.input('input', 'float32', ['N', 3, 224, 224])
  let x = relu(conv('input', 'conv1', 3, 64, 7, 2), 'relu/Relu')
  x = b.add('MaxPool', [x], { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1], autoPad: 'NOTSET', ceil: false, countIncludePad: false }, { name: 'maxpool/MaxPool' }).name
  let cin = 64
  const blocks = depth === 18 ? [2, 2, 2, 2] : [3, 4, 6, 3]
  const expansion = depth === 18 ? 1 : 4
  blocks.forEach((count, li) => {
    const width = 64 << li
    for (let bi = 0; bi < count; bi++) {
      const stride = bi === 0 && li > 0 ? 2 : 1
      const p = `layer${li + 1}.${bi}`
      const cout = width * expansion
      let y: string
      if (depth === 18) {
        y = relu(conv(x, `${p}.conv1`, cin, width, 3, stride), `${p}/relu/Relu`)
        y = conv(y, `${p}.conv2`, width, width, 3, 1)
      } else {
        y = relu(conv(x, `${p}.conv1`, cin, width, 1, 1), `${p}/relu/Relu`)
        y = relu(conv(y, `${p}.conv2`, width, width, 3, stride), `${p}/relu_1/Relu`)
        y = conv(y, `${p}.conv3`, width, cout, 1, 1)
      }
      const skip = stride !== 1 || cin !== cout ? conv(x, `${p}.downsample.0`, cin, cout, 1, stride) : x
      x = relu(b.add('Add', [y, skip], {}, { name: `${p}/Add` }).name, `${p}/relu_2/Relu`)
      cin = cout
    }
  })
  x = b.add('GlobalAveragePool', [x], {}, { name: 'avgpool/GlobalAveragePool' }).name
  x = b.add('Flatten', [x], { axis: 1 }, { name: 'Flatten' }).name
  const fcW = weight('fc.weight', [classes, cin], cin)
  const fcB = b.constant('fc.bias', tensor('float32', [classes], random(classes, 0.01, ++seed))).name
  b.add('Gemm', [x, fcW, fcB], { alpha: 1, beta: 1, transA: false, transB: true }, { name: 'output' })
  return b.build(['output'])
}

/** Floating-point operations of one run (2 per multiply-add in Conv, Gemm and MatMul). */
export function flops(g: Graph): number {
  const byName = new Map(g.nodes.map((n) => [n.name, n]))
  let f = 0
  for (const n of g.nodes) {
    const out = n.type.shape.reduce((p, d) => p * d, 1)
    if (n.op === 'Conv') {
      const w = byName.get(n.inputs[1])!.type.shape
      f += 2 * out * w.slice(1).reduce((p, d) => p * d, 1)
    } else if (n.op === 'Gemm' || n.op === 'MatMul') {
      const a = byName.get(n.inputs[0])!.type.shape
      f += 2 * out * ((n.attrs as { transA?: boolean }).transA ? a[0] : a[a.length - 1])
    }
  }
  return f
}
