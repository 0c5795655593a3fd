/**
 * The package root: the programmatic API. Import a model, run a pipeline of passes over it, interpret
 * the result, print it, write it back as ONNX; compile it for a backend (`compile`), run a CKKS plan
 * encrypted (`runPlan`) or without encryption (`simulatePlan`), serve and query it (`startCkksServer`,
 * `queryCkks`), run the MPC dealer, server and client (`startMpcDealer`, `startMpcServer`,
 * `queryMpc`); `Backend` is the interface a plugin implements.
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
export { PicError } from './ir/errors.js'
export type { Sidecar } from './ir/serialize.js'

// compiling for a backend; plugins
export { compile, compileGraph, type CkksCompiled, type Compiled, type CompileOptions } from './compiler/api.js'
export { BACKENDS, BackendError, loadBackend } from './backends/index.js'
export type { Backend, Lowered } from './backends/backend.js'

// CKKS: the plan, running it with node-seal or without encryption, the service
export { attachSidecar, CkksCompileError, CkksRunError, runPlan, simulatePlan, type CkksPlan, type CkksPlanFile, type RunOptions, type RunResult } from './backends/ckks/index.js'
export {
  clientPartOf, parseClientPart, queryCkks, startCkksServer,
  type CkksQueryOptions, type CkksQueryReport, type CkksServeOptions, type CkksServerHandle, type ClientPart,
} from './backends/ckks/service.js'

// MPC: the schedule; the dealer, server and client over TLS (HOST:PORT endpoints)
export {
  parseSchedule, ProtocolError, runDealer as startMpcDealer, runQuery as queryMpc, runServe as startMpcServer,
  type DealerHandle as MpcDealerHandle, type MpcSchedule, type QueryCommand as MpcQueryOptions, type QueryReport as MpcQueryReport,
  type ServeCommand as MpcServeOptions, type ServerHandle as MpcServerHandle,
} from './backends/mpc/index.js'
export type { DealerOptions as MpcDealerOptions } from './backends/mpc/dealer.js'
export type { Trust } from './backends/mpc/tls.js'
