/**
 * The `ir` backend: the graph after the exact passes (and any approximation asked for), as PIC IR
 * JSON with a binary sidecar. OLA prices degrees as CKKS would, so `pic eval` measures what
 * `--backend ckks` compiles.
 */
import { opCounts } from '../../ir/stats.js'
import { ckksOlaCostModel } from '../ckks/cost.js'
import { printGraph } from '../../ir/print.js'
import { graphFromJSON, graphToJSON, type GraphJSON } from '../../ir/serialize.js'
import { PIPELINES } from '../../passes/pipelines.js'
import type { Backend } from '../backend.js'

export const irBackend: Backend<GraphJSON> = {
  name: 'ir',
  doc: 'the IR after shape inference, constant folding, exact cleanups and dead-code elimination',
  pipeline: (options) => PIPELINES.ir(options),
  lower: (g) => {
    const { json, sidecar } = graphToJSON(g)
    return { plan: json, sidecar }
  },
  print: (plan, sidecar) => printGraph(graphFromJSON(plan, sidecar)),
  defaults: { costModel: ckksOlaCostModel() },
  summary: (_plan, g) => ({ ops: opCounts(g), nodes: g.nodes.length }),
}
