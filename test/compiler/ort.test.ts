/**
 * onnxruntime-node as a second, independent oracle (its own ONNX reader and float32 kernels) and as
 * the fast path for runs over data (compiler/ort.ts). onnxruntime-node is an optional dependency: the
 * tests skip without it, except under CI, where .ci/run installs it and they must run.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ckksBackend } from '../../backends/ckks/index.js'
import { compileFor, parse } from '../../compiler/cli-kit.js'
import { exportCommand } from '../../compiler/cmd-export.js'
import { readNpy } from '../../compiler/npy.js'
import { writeModel } from '../../compiler/onnx-export.js'
import { importModel } from '../../compiler/onnx-import.js'
import { ortAccelerator, ortVersion } from '../../compiler/ort.js'
import { GraphBuilder } from '../../ir/builder.js'
import { interpret, type Accelerator } from '../../ir/interpret.js'
import { sizeOf, tensor, type Tensor } from '../../ir/tensor.js'
import { calibrate } from '../../passes/calibrate.js'
import { lowerForExport } from '../../passes/lower-for-export.js'
import { digits, MODELS, ROOT } from '../helpers.js'
import { random } from '../passes/util.js'

const present = ortVersion() !== undefined
const run = it.skipIf(!present && !process.env.CI)
const FM = path.join(ROOT, 'test/fixtures/fmnist32')

interface Ort {
  InferenceSession: { create(b: Uint8Array, o?: object): Promise<{ inputNames: string[]; outputNames: string[]; run(f: object): Promise<Record<string, { data: Float32Array; dims: number[] }>> }> }
  Tensor: new (t: string, d: Float32Array, s: number[]) => object
}
const ort = (): Ort => createRequire(import.meta.url)('onnxruntime-node') as Ort

function rowsOf(x: Tensor, n: number): Tensor {
  return tensor(x.dtype, [n, ...x.shape.slice(1)], x.data.slice(0, n * sizeOf(x.shape.slice(1))))
}

/** The model's first output from onnxruntime's public API on its own reading of the file. */
async function ortRun(bytes: Uint8Array, x: Tensor): Promise<{ data: Float32Array; dims: number[] }> {
  const { InferenceSession, Tensor } = ort()
  const s = await InferenceSession.create(bytes, { intraOpNumThreads: 1 })
  const out = await s.run({ [s.inputNames[0]]: new Tensor('float32', Float32Array.from(x.data), [...x.shape]) })
  return out[s.outputNames[0]]
}

/** max |a - b| / max(1, max |a|). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(b.length).toBe(a.length)
  let e = 0
  let m = 1
  for (let i = 0; i < a.length; i++) {
    e = Math.max(e, Math.abs(a[i] - b[i]))
    m = Math.max(m, Math.abs(a[i]))
  }
  return e / m
}

/** Counts the nodes an accelerator took. */
function counting(accel: Accelerator): { accel: Accelerator; taken: Map<string, number> } {
  const taken = new Map<string, number>()
  return {
    taken,
    accel: {
      name: accel.name,
      kernel(n, ins, constant) {
        const v = accel.kernel(n, ins, constant)
        if (v) taken.set(n.op, (taken.get(n.op) ?? 0) + 1)
        return v
      },
    },
  }
}

describe('onnxruntime as a second oracle', () => {
  run('is installed (CI installs the optional dependency)', () => {
    expect(ortVersion()).toMatch(/^1\.\d+\.\d+$/)
  })

  const digitsModels = MODELS.map((m) => [m, digits(`${m}.onnx`), digits('test_x.npy')])
  const fmnist = ['resnet20', 'resnet20_aespa', 'resnet20_senet', 'pkn', 'convnext_mini', 'vit_tiny'].map((m) => [`fmnist32/${m}`, path.join(FM, `${m}.onnx`), path.join(FM, 'test_x.npy')])
  run.each([...digitsModels, ...fmnist])('%s: the interpreter agrees with onnxruntime on the same file', async (_name, file, data) => {
    const bytes = readFileSync(file)
    const x = rowsOf(readNpy(data), 8)
    const g = importModel(bytes, { file })
    const want = await ortRun(bytes, x)
    const got = interpret(g, [x]).get(g.outputs[0])!
    expect(got.shape).toEqual(want.dims.map(Number))
    expect(relErr(got.data, want.data)).toBeLessThan(1e-4)
  }, 60_000)

  // pic export's output was only ever read back by PIC's own importer; onnxruntime reads it independently
  run.each([
    ['aespa_cnn', 'none'],
    ['senet_partial_relu', 'none'],
    ['cnn_gelu', 'hermite:4'],
    ['resnet8', 'chebyshev:6'],
    ['mlp_sigmoid_tanh', 'minimax:5'],
  ])('%s exported with --approx %s: onnxruntime on the ONNX file agrees with the compiled IR', async (name, approx) => {
    const args = parse(exportCommand, [digits(`${name}.onnx`), '-o', '/dev/null', '--quiet', '--exact', '--approx', approx, '--calib', digits('calib_x.npy')])
    const { compiled } = compileFor(importModel(readFileSync(digits(`${name}.onnx`)), { file: name }), ckksBackend, args, [lowerForExport])
    const x = rowsOf(readNpy(digits('test_x.npy')), 16)
    const want = await ortRun(writeModel(compiled), x)
    const got = interpret(compiled, [x]).get(compiled.outputs[0])!
    expect(relErr(got.data, want.data)).toBeLessThan(1e-4)
  }, 60_000)
})

describe('the onnxruntime fast path (Accelerator)', () => {
  run('fmnist32/resnet20: every Conv and the Gemm run in onnxruntime, outputs agree with float64 to float32 precision', () => {
    const g = importModel(readFileSync(path.join(FM, 'resnet20.onnx')), { file: 'resnet20.onnx' })
    const x = rowsOf(readNpy(path.join(FM, 'test_x.npy')), 4)
    const { accel, taken } = counting(ortAccelerator()!)
    const fast = interpret(g, [x], { accel }).get(g.outputs[0])!
    const exact = interpret(g, [x]).get(g.outputs[0])!
    const convs = g.nodes.filter((n) => n.op === 'Conv').length
    expect(Object.fromEntries(taken)).toEqual({ Conv: convs, Gemm: 1 })
    const e = relErr(exact.data, fast.data)
    expect(e).toBeLessThan(1e-5)
    // float32 kernels: not bit-identical to the float64 reference (so the oracle must not use them)
    expect(e).toBeGreaterThan(0)
  })

  run('leaves what it cannot take to the reference: float64 tensors, light ops, activations as the weight of MatMul', () => {
    const b = new GraphBuilder('t', 13)
    b.input('x', 'float64', [2, 3])
    b.constant('w', tensor('float64', [3, 4], random([3, 4], 3).data))
    b.add('MatMul', ['x', 'w'], {}, { name: 'y' })
    const g64 = b.build(['y'])
    const { accel, taken } = counting(ortAccelerator()!)
    const x = tensor('float64', [2, 3], random([2, 3], 4).data)
    expect(Array.from(interpret(g64, [x], { accel }).get('y')!.data)).toEqual(Array.from(interpret(g64, [x]).get('y')!.data))
    expect(taken.size).toBe(0)
    // two activations multiplied: both are fed (neither is a weight), a new operand on each call
    const d = new GraphBuilder('t3', 13)
    d.input('a', 'float32', [3, 3])
    d.add('Relu', ['a'], {}, { name: 'r' })
    d.add('MatMul', ['a', 'r'], {}, { name: 'm' })
    const g33 = d.build(['m'])
    for (const seed of [6, 7]) {
      const a = tensor('float32', [3, 3], random([3, 3], seed).data)
      expect(relErr(interpret(g33, [a]).get('m')!.data, interpret(g33, [a], { accel }).get('m')!.data)).toBeLessThan(1e-6)
    }
    expect(Object.fromEntries(taken)).toEqual({ MatMul: 2 })
  })

  run('calibration with it measures the same ranges as the float64 interpreter (to float32 precision)', () => {
    const g = importModel(readFileSync(digits('resnet8.onnx')), { file: 'resnet8.onnx' })
    const calib = readNpy(digits('calib_x.npy'))
    const exact = calibrate(g, calib)
    const fast = calibrate(g, calib, { accel: ortAccelerator()! })
    expect([...fast.keys()]).toEqual([...exact.keys()])
    for (const [name, st] of exact) {
      const f = fast.get(name)!
      const scale = Math.max(1, Math.abs(st.min), Math.abs(st.max))
      for (const k of ['min', 'max', 'mean', 'std'] as const) expect(Math.abs(f[k] - st[k]) / scale, `${name} ${k}`).toBeLessThan(1e-5)
      expect(f.count).toBe(st.count)
    }
  })
})
