/**
 * ONNX backend node tests (test/fixtures/onnx-node): every case is imported, interpreted on each of
 * its data sets and compared with ONNX's own outputs (rtol 1e-4, atol 1e-5), then written with the
 * ONNX writer, imported again and run once more (identical outputs expected). Graph inputs that are
 * shape operands (Pad's pads, Clip's bounds, ...) must be compile-time constants in PIC, so when a
 * plain import says so the case is imported again with its integer and scalar inputs bound as
 * initializers;
 * the cases that need this, and those expected to fail, are asserted exactly (see docs/conformance.md).
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { writeModel } from '../../compiler/onnx-export.js'
import { importModel } from '../../compiler/onnx-import.js'
import { onnx, readTensorPb, tensorToProto } from '../../compiler/onnx-tensor.js'
import { interpret } from '../../ir/interpret.js'
import type { Tensor } from '../../ir/tensor.js'
import { dataSets as protoDataSets } from '../onnx-testdata.js'

const ROOT = path.join(import.meta.dirname, '../fixtures/onnx-node')
const RTOL = 1e-4
const ATOL = 1e-5

/** Cases that cannot pass, with the reason (kept in step with docs/conformance.md). */
const EXPECTED_FAILURES: Record<string, string> = {}

/** Cases whose integer graph inputs are shape operands, bound at compile time. */
const BOUND_INPUTS = new Set<string>([
  'test_constant_pad',
  'test_constantofshape_float_ones',
  'test_reflect_pad',
  'test_reshape_negative_dim',
  'test_reshape_reduced_dims',
  'test_squeeze',
  'test_unsqueeze_axis_0',
  'test_unsqueeze_negative_axes',
])

interface DataSet {
  inputs: Tensor[]
  outputs: Tensor[]
}

function dataSets(dir: string): DataSet[] {
  return protoDataSets(dir).map((d) => ({ inputs: d.inputs.map((b) => readTensorPb(b)), outputs: d.outputs.map((b) => readTensorPb(b)) }))
}

/** The model with the named graph inputs turned into initializers holding the given values. */
function bindInputs(bytes: Uint8Array, values: Map<string, Tensor>): Uint8Array {
  const m = onnx.ModelProto.decode(bytes)
  const inits = (m.graph!.initializer ??= [])
  for (const [name, t] of values) inits.push(tensorToProto(t, name))
  return onnx.ModelProto.encode(m).finish()
}

function mismatch(got: Tensor, want: Tensor): string | undefined {
  if (got.shape.join(',') !== want.shape.join(',')) return `shape [${got.shape}] != [${want.shape}]`
  for (let i = 0; i < want.data.length; i++) {
    const g = got.data[i]
    const w = want.data[i]
    if (Number.isNaN(w) && Number.isNaN(g)) continue
    if (!(Math.abs(g - w) <= ATOL + RTOL * Math.abs(w))) return `element ${i}: ${g} != ${w}`
  }
  return undefined
}

function sameValues(a: Tensor, b: Tensor): boolean {
  return a.shape.join(',') === b.shape.join(',') && a.data.every((v, i) => Object.is(v, b.data[i]))
}

/** Run one case; returns undefined when it passes, else the problem. Records input binding. */
function runCase(name: string, bound: Set<string>): string | undefined {
  const dir = path.join(ROOT, name)
  const bytes = readFileSync(path.join(dir, 'model.onnx'))
  const sets = dataSets(dir)
  try {
    for (const ds of sets) {
      let g
      let inputs = ds.inputs
      try {
        g = importModel(bytes, { file: `${name}/model.onnx` })
      } catch (e) {
        if (!/compile-time constant/.test((e as Error).message)) throw e
        const names = (onnx.ModelProto.decode(bytes).graph!.input ?? []).map((v) => v.name ?? '')
        const values = new Map<string, Tensor>()
        const keep: Tensor[] = []
        ds.inputs.forEach((t, i) => (t.dtype === 'int64' || t.shape.length === 0 ? values.set(names[i], t) : keep.push(t)))
        g = importModel(bindInputs(bytes, values), { file: `${name}/model.onnx` })
        inputs = keep
        bound.add(name)
      }
      const out = interpret(g, inputs)
      const again = interpret(importModel(writeModel(g), { file: `${name} (written)` }), inputs)
      for (const [k, want] of ds.outputs.entries()) {
        const got = out.get(g.outputs[k])!
        const bad = mismatch(got, want)
        if (bad) return `output ${k}: ${bad}`
        if (!sameValues(again.get(g.outputs[k])!, got)) return `output ${k} differs after writeModel and importModel`
      }
    }
  } catch (e) {
    return (e as Error).message
  }
  return undefined
}

const index = JSON.parse(readFileSync(path.join(ROOT, 'index.json'), 'utf8')) as { cases: { name: string }[] }

describe('ONNX backend node tests', () => {
  it('has all 83 cases', () => expect(index.cases.length).toBe(83))
  for (const { name } of index.cases) {
    it(name, () => {
      const bound = new Set<string>()
      const problem = runCase(name, bound)
      if (name in EXPECTED_FAILURES) expect(problem, `${name} now passes: update EXPECTED_FAILURES`).toBeDefined()
      else expect(problem).toBeUndefined()
      expect(bound.has(name), 'binds a shape operand as an initializer exactly when BOUND_INPUTS lists it').toBe(BOUND_INPUTS.has(name))
    })
  }
})
