/** Loading models and input tensors from files for the CLI, with PicErrors that name the file. */
import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import type { Graph } from '../ir/graph.js'
import { dtypeOfElemType, isFloat, type Tensor } from '../ir/tensor.js'
import { cannotRead, PicError, readUserFile, writeUserFile } from './errors.js'
import { readNpy } from './npy.js'
import { importModel } from './onnx-import.js'
import { elemTypeName, onnx, readTensorPb, tensorToProto } from './onnx-tensor.js'

/** Protobuf cannot hold more than 2 GiB; anything larger is not an ONNX file PIC can read. */
const MAX_MODEL_BYTES = 2 ** 31

function readModelBytes(file: string): Buffer {
  let size: number
  try {
    const st = statSync(file)
    if (!st.isFile()) throw new PicError(`${file}: not a file`)
    size = st.size
  } catch (e) {
    if (e instanceof PicError) throw e
    throw cannotRead(file, e)
  }
  if (size > MAX_MODEL_BYTES) throw new PicError(`${file}: ${size} bytes is larger than the 2 GiB a protobuf model can be`)
  return readFileSync(file)
}

/**
 * Import a model; `bound` graph inputs become constants holding the given tensors (the graph is
 * specialised on them: shape operands such as Reshape's shape or Range's limits fed as inputs).
 */
export function loadModel(file: string, symbols?: Record<string, number>, bound?: ReadonlyMap<string, Tensor>): Graph {
  let bytes: Uint8Array = readModelBytes(file)
  if (bound && bound.size > 0) {
    let m: onnx.ModelProto
    try {
      m = onnx.ModelProto.decode(bytes)
    } catch {
      return importModel(bytes, { file })
    }
    bytes = bindModelInputs(m, bound, file)
  }
  return importModel(bytes, { file, baseDir: path.dirname(path.resolve(file)), symbols })
}

/** The model with the `bound` graph inputs made initializers holding the given tensors (of the declared element type). */
export function bindModelInputs(m: onnx.ModelProto, bound: ReadonlyMap<string, Tensor>, file: string): Uint8Array {
  const copy = onnx.ModelProto.decode(onnx.ModelProto.encode(m).finish())
  const names = new Set(modelInputNames(copy))
  for (const [name, t] of bound) {
    if (!names.has(name)) throw new PicError(`${file}: --bind ${name}: the model has no input '${name}'`)
    const declared = copy.graph!.input!.find((i) => i.name === name)?.type?.tensorType?.elemType ?? 0
    if (declared !== 0 && dtypeOfElemType(declared) !== t.dtype) throw new PicError(`${file}: --bind ${name}: the model declares ${elemTypeName(declared)}, the file holds ${t.dtype}`)
  }
  const inits = (copy.graph!.initializer ??= [])
  for (const [name, t] of bound) inits.push(tensorToProto(t, name))
  return onnx.ModelProto.encode(copy).finish()
}

function modelInputNames(m: onnx.ModelProto): string[] {
  const inits = new Set((m.graph?.initializer ?? []).map((t) => t.name ?? ''))
  return (m.graph?.input ?? []).map((i) => i.name ?? '').filter((n) => !inits.has(n))
}

/** The graph inputs a model file declares (initializers left out), in order; empty when it cannot be decoded. */
export function inputNamesOf(file: string): string[] {
  try {
    return modelInputNames(onnx.ModelProto.decode(readModelBytes(file)))
  } catch {
    return []
  }
}

/**
 * An input that can be a shape operand: an integer tensor, a scalar (Range's limits), or, past the
 * first input, floats of rank 1 (Resize's scales and roi).
 */
export function bindable(t: Tensor, first: boolean): boolean {
  return !isFloat(t.dtype) || t.shape.length === 0 || (!first && t.shape.length === 1)
}

/** A refusal that binding shape-operand inputs as constants can cure. */
export function needsBinding(e: unknown): boolean {
  return e instanceof PicError && /must be a compile-time (constant|scalar)/.test(e.message)
}

/** A tensor from a .npy file or a serialized ONNX TensorProto (.pb). */
export function readTensorFile(file: string): Tensor {
  if (file.endsWith('.pb')) {
    const bytes = readUserFile(file)
    try {
      return readTensorPb(bytes)
    } catch (e) {
      throw new PicError(`${file}: not a valid ONNX TensorProto (${(e as Error).message})`)
    }
  }
  return readNpy(file)
}

/** plan.json -> plan.bin: where a plan's binary constants are written. */
export function sidecarPath(planFile: string): string {
  return planFile.replace(/(\.json)?$/, '.bin')
}

/** Write byte chunks to one file in order, without joining them in memory first. */
export function writeChunks(file: string, chunks: readonly Uint8Array[]): void {
  writeUserFile(file, chunks)
}

/** A JSON file (a plan or schedule), with PicErrors that say which file and what is wrong. */
export function readJSONFile(file: string, what: string): unknown {
  const text = readUserFile(file).toString('utf8')
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new PicError(`${file}: not a JSON ${what} (${(e as Error).message})`)
  }
}
