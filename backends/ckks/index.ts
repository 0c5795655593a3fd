/**
 * The CKKS backend: `lower` compiles the graph to a plan (plain JSON; the compiled graph rides along
 * in the sidecar so `pic run` can compare with the interpreter), `print` gives the text form,
 * `summary` the params and stats for `pic compile --json`. `runPlan` executes a plan with node-seal.
 */
import { withBatchSize } from '../../ir/builder.js'
import { PicError } from '../../ir/errors.js'
import type { Graph } from '../../ir/graph.js'
import { sizeOf } from '../../ir/tensor.js'
import { graphFromJSON, graphToJSON, type GraphJSON } from '../../ir/serialize.js'
import { PIPELINES } from '../../passes/pipelines.js'
import type { Backend } from '../backend.js'
import { CkksCompileError, compileCkks, type CompileOptions } from './compile.js'
import type { SecurityLevel } from './params.js'
import { constantsFromSidecar, constantsToSidecar, type CkksPlan, type SidecarInfo } from './plan.js'
import { interaction, printPlan } from './print.js'
import { parseBytes } from './memory.js'
import { ckksOlaCostModel } from './cost.js'
import { checkPlanRanges } from './ranges.js'
import { calibrateRefreshBounds } from './refresh.js'

export { compileCkks, CkksCompileError, estimateMs, type CompileOptions } from './compile.js'
export { runPlan, checkRunnable, CkksRunError, type RunOptions, type RunResult } from './runtime.js'
export { simulatePlan } from './simulate.js'
export { checkPlanRanges } from './ranges.js'
export { printPlan, interaction } from './print.js'
export { planMemory, SEAL_HEAP_BYTES, type PlanMemory } from './memory.js'
export { validatePlan, recomputeMemory, CkksPlanError } from './validate.js'
export { ckksOlaCostModel, ckksPolyDepth, opCost, loadCostTable } from './cost.js'
export { chooseParams, checkSecure, maxLogQ, MAX_LOGQ, totalBits, type CkksParams, type SecurityLevel } from './params.js'
export type { CkksPlan } from './plan.js'

/**
 * A plan as the backend writes it: the plan plus the compiled graph it was lowered from; the sidecar
 * (plan.bin) holds the graph's tensors, then the constants (`sidecar` says how many bytes of each).
 */
export type CkksPlanFile = CkksPlan & { reference?: GraphJSON; sidecar?: SidecarInfo }

/**
 * A written plan with its sidecar read back: constants as typed arrays (checked against the plan's
 * fingerprint) and the reference graph's part of the sidecar. Plans written before the sidecar
 * held constants (base64 in the JSON) pass through.
 */
export function attachSidecar(plan: CkksPlanFile, bytes?: Uint8Array): { plan: CkksPlanFile; graphBytes?: Uint8Array } {
  if (!plan.sidecar) return { plan, graphBytes: bytes }
  const info = plan.sidecar
  if (!bytes) throw new Error(`the plan's constants are in its .bin sidecar (${info.graphBytes + info.constantBytes} bytes), which is missing`)
  if (bytes.length !== info.graphBytes + info.constantBytes)
    throw new Error(`the sidecar holds ${bytes.length} bytes, the plan refers to ${info.graphBytes + info.constantBytes}`)
  const constants = constantsFromSidecar(plan.constants, bytes.subarray(info.graphBytes), info)
  return { plan: { ...plan, constants }, graphBytes: bytes.subarray(0, info.graphBytes) }
}

function num(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined
  const n = Number(v)
  if (!Number.isFinite(n)) throw new CkksCompileError(`expected a number, got '${String(v)}'`)
  return n
}

/** node-seal's heap to fit: the `heap` option or PIC_CKKS_HEAP (bytes, or with KiB/MiB/GiB); default 4 GiB. */
function heapOption(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined
  try {
    const b = typeof v === 'number' ? v : parseBytes(String(v))
    if (!(b > 0)) throw new Error(`not a positive size: '${String(v)}'`)
    return b
  } catch (e) {
    throw new CkksCompileError(`heap: ${(e as Error).message}`)
  }
}

/** Compile options from backend options (`security`, `logN`, `minLogScale`, `maxInputCts`). */
export function compileOptionsFrom(options: Readonly<Record<string, unknown>>): CompileOptions {
  const sec = num(options.security) ?? 128
  if (sec !== 128 && sec !== 192 && sec !== 256) throw new CkksCompileError(`--security must be 128, 192 or 256, got ${sec}`)
  const refresh = options.refresh ?? 'client'
  if (refresh !== 'client' && refresh !== 'none') throw new CkksCompileError(`--refresh must be 'client' or 'none', got '${String(refresh)}'`)
  const at = options.refreshAt ?? 'cost'
  if (at !== 'cost' && at !== 'latest') throw new CkksCompileError(`--refresh-at must be 'cost' or 'latest', got '${String(at)}'`)
  return {
    security: sec as SecurityLevel,
    leveledOnly: refresh === 'none',
    refreshPlacement: at,
    logN: num(options.logN),
    minLogScale: num(options.minLogScale),
    maxInputCts: num(options.maxInputCts),
    heapBytes: heapOption(options.heap ?? process.env.PIC_CKKS_HEAP),
  }
}

/**
 * `--batch auto`: the plan at one image, then, when it is leveled and its largest tensor leaves
 * room, at 2, 4, ... images interleaved while K times the largest tensor fits the slots; the plan
 * with the lowest estimated time per image is kept and says what was tried.
 */
export function compileAutoBatch(g: Graph, opts: CompileOptions): { plan: CkksPlan; graph: Graph } {
  const one = compileCkks(g, opts)
  const largest = Math.max(...g.nodes.filter((n) => n.op !== 'Constant').map((n) => sizeOf(n.type.shape)))
  let best = { plan: one, graph: g, K: 1, perImage: one.stats.estimatedTotalMs }
  const tried = [`1: ${one.stats.estimatedTotalMs.toFixed(1)} ms`]
  if (one.stats.bootstraps === 0)
    for (let K = 2; K * largest <= one.params.slots; K *= 2) {
      const gK = withBatchSize(g, K)
      if (!gK) {
        tried.push(`${K}: the model's batch is fixed`)
        break
      }
      let plan: CkksPlan
      try {
        plan = compileCkks(gK, opts)
      } catch (e) {
        if (!(e instanceof PicError)) throw e
        tried.push(`${K}: ${e.message}`)
        break
      }
      const perImage = plan.stats.estimatedTotalMs / K
      tried.push(`${K}: ${perImage.toFixed(1)} ms`)
      if (perImage < best.perImage) best = { plan, graph: gK, K, perImage }
    }
  const why = best.K > 1 ? `${best.K} images per inference` : one.stats.bootstraps > 0 ? 'the plan needs refreshes' : tried.length === 1 ? 'one image already fills the slots' : tried.some((t) => t.endsWith('fixed')) ? "the model's batch is fixed" : 'no batch is cheaper per image'
  best.plan.stats.notes.push(`--batch auto: ${why}; estimated ms per image by images per inference: ${tried.join(', ')}`)
  return { plan: best.plan, graph: best.graph }
}

/** The compiled graph stored with a plan (for maxAbsErrorVsPlain), if present. */
export function referenceGraph(plan: CkksPlanFile, sidecar?: Uint8Array): Graph | undefined {
  return plan.reference ? graphFromJSON(plan.reference, sidecar) : undefined
}

export const ckksBackend: Backend<CkksPlanFile> = {
  name: 'ckks',
  doc: 'leveled CKKS with node-seal: secure parameters, packed diagonal transforms, polynomial activations',
  pipeline: (options) => PIPELINES.ckks(options),
  lower: (g0, cx) => {
    const opts = { ...compileOptionsFrom(cx.options), log: (m: string) => cx.log(m) }
    const { plan: unchecked, graph: g } = cx.options.batch === 'auto' ? compileAutoBatch(g0, opts) : { plan: compileCkks(g0, opts), graph: g0 }
    // every value against its level's modulus on the calibration data (ranges.ts; q0 widened or refused)
    const plan = checkPlanRanges(g, unchecked, opts, cx.calib, num(cx.options.rangeMargin), (m) => cx.log(m))
    // masked refreshes: each refresh's bound measured on the calibration data when given (refresh.ts)
    if (plan.refreshMask && cx.calib) {
      calibrateRefreshBounds(plan, cx.calib)
      plan.stats.notes.push(`refresh masks sized on ${plan.refreshMask.calibration!.images} calibration image(s): |x| <= ${plan.refreshMask.bounds!.map((b) => b.toPrecision(3)).join(', ')} (${plan.refreshMask.calibration!.margin}x the largest seen)`)
    }
    const { json, sidecar } = graphToJSON(g)
    const c = constantsToSidecar(plan.constants)
    const info: SidecarInfo = { graphBytes: json.sidecarBytes, constantBytes: c.bytes, fingerprint: c.fingerprint }
    return { plan: { ...plan, constants: c.json, sidecar: info, reference: json }, sidecar: [...sidecar, ...c.chunks] }
  },
  print: (plan) => printPlan(plan),
  defaults: { costModel: ckksOlaCostModel() },
  summary: (plan) => {
    const { primeValues: _p, ...params } = plan.params
    return { params, keys: { rotations: plan.keys.rotations.length, relin: plan.keys.relin }, plaintexts: plan.plaintexts, interaction: interaction(plan), stats: plan.stats }
  },
}
