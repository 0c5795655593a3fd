/** PicError: the one kind of error the CLI prints as a single `pic: error: ...` line. */
import { readFileSync } from 'node:fs'
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

/** "file: cannot read (ENOENT)" for a failed read or stat of a file the user named. */
export function cannotRead(file: string, e: unknown): PicError {
  return new PicError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`)
}

/** The bytes of a file the user named, or a PicError that names it. */
export function readUserFile(file: string): Buffer {
  try {
    return readFileSync(file)
  } catch (e) {
    throw cannotRead(file, e)
  }
}
