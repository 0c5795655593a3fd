/**
 * The step kinds, in the order their parts appear in the dealer's material and the offline
 * specification, and what the parties derive from a schedule once per session: every step's
 * layout and first online round tag.
 */
import type { MpcSchedule, Step } from '../types.js'
import { gc } from './gc.js'
import type { StepKind } from './kind.js'
import { mul } from './mul.js'
import { poly } from './poly.js'

export const STEP_KINDS: readonly StepKind[] = [poly, mul, gc]

/** The step kind of a step. */
export function kindOf(st: Step): StepKind {
  return st.kind === 'gc' ? gc : st.kind === 'mul' ? mul : poly
}

export interface SessionPlan {
  /** Per step, what its kind derives from the schedule. */
  layouts: unknown[]
  /**
   * Online round tags: 0 for the input, then each step's first (-1 for a step without rounds; a step
   * takes consecutive tags), then the output.
   */
  tags: { steps: number[]; output: number }
}

export function sessionPlan(s: MpcSchedule): SessionPlan {
  const layouts = s.steps.map((st, k) => kindOf(st).layout(s, st, k))
  let t = 1
  const steps = s.steps.map((st, k) => {
    const n = kindOf(st).rounds(layouts[k])
    if (!n) return -1
    const tag = t
    t += n
    return tag
  })
  return { layouts, tags: { steps, output: t } }
}
