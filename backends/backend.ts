/**
 * The backend interface. A backend names the pipeline it needs, lowers the compiled graph to a plan
 * (plain JSON data plus optional binary sidecar), prints the plan for people and summarizes it for
 * `--json`. Plugins are ES modules whose default export (or `backend` export) is a Backend, loaded
 * by `pic compile MODEL --backend ./PLUGIN.js` and by the API's `compile(graph, './PLUGIN.js')`
 * (compiler/api.ts); examples/plugin-backend.js is a small complete one. The package root exports
 * this type as `Backend`.
 */
import type { Graph } from '../ir/graph.js'
import type { Sidecar } from '../ir/serialize.js'
import type { CostModel } from '../passes/ola.js'
import type { Pass, PassContext } from '../passes/pass.js'

export interface Lowered<Plan = unknown> {
  plan: Plan
  /** Large constants (weights) referenced from the plan by offset: byte chunks written in order. */
  sidecar?: Sidecar
}

export interface Backend<Plan = unknown> {
  readonly name: string
  readonly doc: string
  /** The passes to run before lowering, given the user's options (approximation, ...). */
  pipeline(options: Readonly<Record<string, unknown>>): readonly Pass[]
  lower(g: Graph, cx: PassContext): Lowered<Plan>
  /** Readable text form of the plan (with its sidecar, when it has one). */
  print(plan: Plan, sidecar?: Sidecar): string
  /** What `pic compile --json` prints besides `backend`. */
  summary(plan: Plan, g: Graph): Record<string, unknown>
  /**
   * Pass options this backend wants unless the user says otherwise: `keepRelu` (ReLUs stay exact
   * unless --approx-relu) and OLA's `costModel` (OLA's own depth + multiplications when absent).
   */
  readonly defaults?: { keepRelu?: boolean; costModel?: CostModel }
}
