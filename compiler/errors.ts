/** PicError: the one kind of error the CLI prints as a single `pic: error: ...` line. */
import { PicError } from '../ir/errors.js'
import type { Origin } from '../ir/graph.js'

export { PicError }

/** "file: node 'name' (Op): problem" */
export function nodeError(file: string, node: { name: string; op: string; origin?: Origin } | undefined, problem: string): PicError {
  if (!node) return new PicError(`${file}: ${problem}`)
  const o = node.origin
  const label = o ? `node '${o.name || node.name}' (${o.op})` : `node '${node.name}' (${node.op})`
  return new PicError(`${file}: ${label}: ${problem}`)
}
