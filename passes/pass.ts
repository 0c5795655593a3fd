/**
 * Passes and the pass manager. A pass is a named pure function Graph -> Graph; the manager runs a
 * pipeline (a plain array of passes), verifies the graph after each pass and can trace the IR.
 */
import { PicError } from '../ir/errors.js'
import type { Graph } from '../ir/graph.js'
import type { Accelerator } from '../ir/interpret.js'
import type { Tensor } from '../ir/tensor.js'
import { verify, VerifyError } from '../ir/verify.js'

export interface PassContext {
  /** Calibration data for the graph's first input (passes that approximate need it). */
  calib?: Tensor
  /** Options by name, as the CLI or an API caller sets them (e.g. approx: 'hermite:2'). */
  options: Readonly<Record<string, unknown>>
  /** Progress and notes for people (stderr in the CLI). */
  log(message: string): void
  /** Per-pass findings for reports (`layers` in `pic eval --json`, ReLU budgets, ...). */
  report: Record<string, unknown>
  /**
   * Faster kernels for the passes' runs over the calibration data (calibration, OLA, the ReLU
   * budget); absent, they run the float64 reference (see Accelerator in ir/interpret.ts).
   */
  accel?: Accelerator
}

export interface Pass {
  readonly name: string
  readonly doc: string
  run(g: Graph, cx: PassContext): Graph
}

export class PassError extends PicError {}

export function passContext(options: Record<string, unknown> = {}, extra: Partial<PassContext> = {}): PassContext {
  return { options, log: () => {}, report: {}, ...extra }
}

export interface PipelineOptions {
  /** Called with the IR after each pass (`--trace`). */
  trace?: (pass: Pass, g: Graph) => void
  /** Verify after each pass (default true). */
  verify?: boolean
}

export function runPipeline(g: Graph, passes: readonly Pass[], cx: PassContext, opts: PipelineOptions = {}): Graph {
  let cur = g
  for (const p of passes) {
    cur = p.run(cur, cx)
    if (opts.verify !== false) {
      try {
        verify(cur)
      } catch (e) {
        if (e instanceof VerifyError) throw new PassError(`pass ${p.name} produced an invalid graph: ${e.message}`)
        throw e
      }
    }
    opts.trace?.(p, cur)
  }
  return cur
}
