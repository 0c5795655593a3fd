/** PicError: the one kind of error the CLI prints as a single `pic: error: ...` line. */
import type { Origin } from '../ir/graph.js'

export class PicError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PicError'
  }
}

/** "file: node 'name' (Op): problem" */
export function nodeError(file: string, node: { name: string; op: string; origin?: Origin } | undefined, problem: string): PicError {
  if (!node) return new PicError(`${file}: ${problem}`)
  const o = node.origin
  const label = o ? `node '${o.name || node.name}' (${o.op})` : `node '${node.name}' (${node.op})`
  return new PicError(`${file}: ${label}: ${problem}`)
}
