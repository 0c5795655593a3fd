/**
 * Runner for the whole ONNX 1.12 backend test data (Debian package libonnx-testdata, or PIC_ONNX_TESTDATA):
 * every case of node/, pytorch-converted/, pytorch-operator/ and simple/ is imported and interpreted
 * on each data set as `pic infer` runs it (the data set's inputs in graph order; inputs that a shape
 * or an axis depends on bound as constants when a plain import refuses them), and compared with the
 * case's outputs: shape, element type and values at rtol 1e-4, atol 1e-5. Cases whose ops are not
 * inference ops (training and loss ops, strings, sequences, optionals, control flow, random
 * generators, signal processing, dynamic-size outputs) are counted apart.
 *
 * Used by bench/onnx-testdata.ts (counts, docs/conformance.md) and test/ir/onnx-testdata.test.ts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { importModel } from '../compiler/onnx-import.js'
import { DT, onnx, protoTypeOf, readTensorPb } from '../compiler/onnx-tensor.js'
import { PicError } from '../ir/errors.js'
import { interpret } from '../ir/interpret.js'
import type { Tensor } from '../ir/tensor.js'
import { bindable, bindModelInputs } from '../compiler/model.js'

export const ROOT = process.env.PIC_ONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data'
export const GROUPS = ['node', 'pytorch-converted', 'pytorch-operator', 'simple']
export const RTOL = 1e-4
export const ATOL = 1e-5

/** Ops outside inference as PIC means it: their cases are counted apart. */
const NOT_INFERENCE = new Set([
  // training and losses
  'Adagrad', 'Adam', 'Momentum', 'Gradient', 'NegativeLogLikelihoodLoss', 'SoftmaxCrossEntropyLoss',
  // strings
  'StringNormalizer', 'RegexFullMatch', 'StringConcat', 'StringSplit', 'TfIdfVectorizer', 'LabelEncoder',
  // sequences and optionals
  'SequenceAt', 'SequenceConstruct', 'SequenceEmpty', 'SequenceErase', 'SequenceInsert', 'SequenceLength', 'SequenceMap',
  'SplitToSequence', 'ConcatFromSequence', 'Optional', 'OptionalGetElement', 'OptionalHasElement',
  // control flow
  'If', 'Loop', 'Scan',
  // random generators
  'Bernoulli', 'RandomNormal', 'RandomNormalLike', 'RandomUniform', 'RandomUniformLike', 'Multinomial',
  // signal processing
  'DFT', 'STFT', 'MelWeightMatrix', 'HannWindow', 'HammingWindow', 'BlackmanWindow',
  // dynamic-size outputs
  'NonZero', 'Unique', 'NonMaxSuppression', 'Compress', 'TopK',
])

export type Outcome = { kind: 'pass' } | { kind: 'refuse' | 'mismatch' | 'error' | 'skip'; why: string }

export interface CaseResult {
  group: string
  name: string
  ops: string[]
  outcome: Outcome
}

/** The serialized input and output TensorProtos of each test_data_set_N of an ONNX test case, in order. */
export function dataSets(dir: string): { inputs: Uint8Array[]; outputs: Uint8Array[] }[] {
  return readdirSync(dir)
    .filter((d) => d.startsWith('test_data_set_'))
    .sort()
    .map((d) => {
      const files = readdirSync(path.join(dir, d))
      const read = (prefix: string) =>
        files
          .filter((f) => f.startsWith(prefix) && f.endsWith('.pb'))
          .sort((a, b) => parseInt(a.slice(prefix.length)) - parseInt(b.slice(prefix.length)))
          .map((f) => readFileSync(path.join(dir, d, f)))
      return { inputs: read('input_'), outputs: read('output_') }
    })
}

function compare(got: Tensor, wantBytes: Uint8Array, name: string, declared: number): string | undefined {
  const proto = onnx.TensorProto.decode(wantBytes)
  const want = readTensorPb(wantBytes, declared)
  if (got.shape.join(',') !== want.shape.join(',')) return `output '${name}': shape [${got.shape}] instead of [${want.shape}]`
  // ONNX 1.12 stores bfloat16 data as UINT16 holding the bits (readTensorPb reads them as bfloat16)
  const wantType = want.dtype === 'bfloat16' ? DT.BFLOAT16 : (proto.dataType ?? 0)
  if (protoTypeOf(got.dtype) !== wantType) return `output '${name}': element type ${got.dtype} instead of ${(DT as unknown as Record<number, string>)[wantType]}`
  for (let i = 0; i < want.data.length; i++) {
    const g = got.data[i]
    const w = want.data[i]
    if (Number.isNaN(w) && Number.isNaN(g)) continue
    if (g === w) continue
    if (!(Math.abs(g - w) <= ATOL + RTOL * Math.abs(w))) return `output '${name}': element ${i} is ${g}, expected ${w}`
  }
  return undefined
}

function runCase(dir: string): { ops: string[]; outcome: Outcome } {
  const bytes = readFileSync(path.join(dir, 'model.onnx'))
  let m: onnx.ModelProto
  try {
    m = onnx.ModelProto.decode(bytes)
  } catch (e) {
    return { ops: [], outcome: { kind: 'error', why: `protobuf: ${(e as Error).message}` } }
  }
  const ops = [...new Set((m.graph?.node ?? []).map((n) => n.opType ?? ''))].sort()
  const foreign = ops.filter((o) => NOT_INFERENCE.has(o))
  const training = (m.opsetImport ?? []).some((o) => o.domain === 'ai.onnx.preview.training')
  if (foreign.length > 0 || training) return { ops, outcome: { kind: 'skip', why: training ? 'training domain' : foreign.join(', ') } }
  const sets = dataSets(dir)
  if (sets.length === 0) return { ops, outcome: { kind: 'skip', why: 'no data set' } }
  const inits = new Set((m.graph?.initializer ?? []).map((t) => t.name ?? ''))
  const inputNames = (m.graph?.input ?? []).map((i) => i.name ?? '').filter((n) => !inits.has(n))
  const outputNames = (m.graph?.output ?? []).map((o) => o.name ?? '')
  const declared = (vs: onnx.IValueInfoProto[] | null | undefined, name: string) => vs?.find((v) => v.name === name)?.type?.tensorType?.elemType ?? 0
  for (const set of sets) {
    let inputs: Tensor[]
    try {
      inputs = set.inputs.map((b, k) => readTensorPb(b, declared(m.graph?.input, inputNames[k])))
    } catch (e) {
      return { ops, outcome: { kind: 'refuse', why: `input: ${(e as Error).message}` } }
    }
    let g
    try {
      g = importModel(bytes, { file: 'model.onnx' })
    } catch (e) {
      if (!(e instanceof PicError)) return { ops, outcome: { kind: 'error', why: `import: ${(e as Error).stack?.split('\n').slice(0, 2).join(' ')}` } }
      // as `pic infer` does: bind the inputs after the first that can be shape operands, and import again
      const bound = new Map<string, Tensor>()
      inputNames.forEach((n, k) => {
        if (inputs[k] && bindable(inputs[k], k === 0)) bound.set(n, inputs[k])
      })
      if (bound.size === 0) return { ops, outcome: { kind: 'refuse', why: e.message } }
      try {
        g = importModel(bindModelInputs(m, bound, 'model.onnx'), { file: 'model.onnx' })
        inputs = inputs.filter((_, k) => !bound.has(inputNames[k]))
      } catch (e2) {
        return { ops, outcome: { kind: e2 instanceof PicError ? 'refuse' : 'error', why: (e2 as Error).message } }
      }
    }
    let values: Map<string, Tensor>
    try {
      values = interpret(g, inputs)
    } catch (e) {
      return { ops, outcome: { kind: e instanceof PicError ? 'refuse' : 'error', why: `run: ${(e as Error).message}` } }
    }
    for (let k = 0; k < outputNames.length; k++) {
      const got = values.get(g.outputs[k])
      if (!got) return { ops, outcome: { kind: 'mismatch', why: `output '${outputNames[k]}' missing` } }
      const bad = set.outputs[k] ? compare(got, set.outputs[k], outputNames[k], declared(m.graph?.output, outputNames[k])) : undefined
      if (bad) return { ops, outcome: { kind: 'mismatch', why: bad } }
    }
  }
  return { ops, outcome: { kind: 'pass' } }
}

/** Every case of the given groups under root, in order. */
export function runTestData(root = ROOT, groups: readonly string[] = GROUPS, match?: RegExp): CaseResult[] {
  const results: CaseResult[] = []
  for (const group of groups) {
    const gdir = path.join(root, group)
    if (!existsSync(gdir)) continue
    for (const name of readdirSync(gdir).sort()) {
      const dir = path.join(gdir, name)
      if (!existsSync(path.join(dir, 'model.onnx'))) continue
      if (match && !match.test(name)) continue
      let r: { ops: string[]; outcome: Outcome }
      try {
        r = runCase(dir)
      } catch (e) {
        r = { ops: [], outcome: { kind: 'error', why: (e as Error).message } }
      }
      results.push({ group, name, ...r })
    }
  }
  return results
}
