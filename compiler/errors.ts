/**
 * PicError: the one kind of error the CLI prints as a single `pic: error: ...` line; reading and
 * writing the files a user names, with errors that name the file.
 *
 * Writes are whole or nothing: `checkWritable` refuses early (before the work) a FILE whose directory
 * is missing or that is a directory; `writeUserFile` writes FILE.tmp and renames it over FILE, so a
 * failed write leaves no partial FILE (and removes FILE.tmp). Failures read
 * `cannot write FILE (CODE)`, CODE the system's (ENOENT, EISDIR, EACCES, ENOSPC, ...).
 */
import { closeSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import path from 'node:path'
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

/** "cannot write FILE (ENOENT)" for a failed write of a file the user named. */
export function cannotWrite(file: string, e: unknown): PicError {
  return new PicError(`cannot write ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`)
}

/** Refuse, before any work, an output FILE that cannot be written: its directory missing or not one, or FILE a directory. */
export function checkWritable(file: string): void {
  const fail = (code: string) => {
    throw new PicError(`cannot write ${file} (${code})`)
  }
  try {
    if (statSync(file).isDirectory()) fail('EISDIR')
  } catch (e) {
    if (e instanceof PicError) throw e
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw cannotWrite(file, e)
    let dir: ReturnType<typeof statSync>
    try {
      dir = statSync(path.dirname(path.resolve(file)))
    } catch (e2) {
      throw cannotWrite(file, e2)
    }
    if (!dir.isDirectory()) fail('ENOTDIR')
  }
}

/** Write `data` (bytes, text, or byte chunks in order) to FILE whole or not at all: FILE.tmp, then renamed. */
export function writeUserFile(file: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  checkWritable(file)
  const tmp = `${file}.tmp`
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data
  let fd: number | undefined
  try {
    fd = openSync(tmp, 'w')
    for (const c of chunks) for (let at = 0; at < c.length; ) at += writeSync(fd, c, at, c.length - at)
    closeSync(fd)
    fd = undefined
    renameSync(tmp, file)
  } catch (e) {
    if (fd !== undefined) closeSync(fd)
    try {
      unlinkSync(tmp)
    } catch {
      // nothing was created
    }
    throw cannotWrite(file, e)
  }
}
