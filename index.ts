/**
 * The package root: the programmatic API. Import a model, run a pipeline of passes over it, interpret
 * the result, print it, write it back as ONNX.
 */
export { importModel, type ImportOptions } from './compiler/onnx-import.js'
export { writeModel, type WriteOptions } from './compiler/onnx-export.js'
export { encodeNpy, parseNpy, readNpy, writeNpy } from './compiler/npy.js'
export { GraphBuilder, GraphError, instantiate } from './ir/builder.js'
export type { Attrs, Graph, Node, Origin } from './ir/graph.js'
export { interpret, run1, type Accelerator, type InterpretOptions } from './ir/interpret.js'
export { ortAccelerator, ortVersion } from './compiler/ort.js'
export type { OpDef, OpKind, Operand } from './ir/op.js'
export {
  LinearAnalysis, applyAffine, applyAffineT, simplifyChain, type Affine, type Prim, type SecretForm, type Term,
} from './ir/linear.js'
export { OPS } from './ir/ops/index.js'
export type { PartialReluAttrs, PolyAttrs } from './ir/ops/pi.js'
export { printGraph } from './ir/print.js'
export { tensor, type DType, type Tensor, type TensorType } from './ir/tensor.js'
export { verify } from './ir/verify.js'
export * from './passes/index.js'
