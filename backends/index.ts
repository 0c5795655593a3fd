/**
 * The backend table, and plugins: `--backend ./path/to/plugin.js` loads an ES module whose default
 * export (or export named `backend`) implements Backend (see backend.ts; examples/plugin-backend.js).
 * A path is resolved against the working directory. The package root exports BACKENDS and loadBackend.
 */
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { PicError } from '../ir/errors.js'
import type { Backend } from './backend.js'
import { ckksBackend } from './ckks/index.js'
import { irBackend } from './ir/index.js'
import { mpcBackend } from './mpc/index.js'

export const BACKENDS: Readonly<Record<string, Backend>> = {
  ir: irBackend as Backend,
  ckks: ckksBackend as Backend,
  mpc: mpcBackend as Backend,
}

export class BackendError extends PicError {}

function isBackend(b: unknown): b is Backend {
  const x = b as Backend
  return !!x && typeof x.name === 'string' && typeof x.pipeline === 'function' && typeof x.lower === 'function' && typeof x.print === 'function' && typeof x.summary === 'function'
}

export async function loadBackend(spec: string): Promise<Backend> {
  const builtin = BACKENDS[spec]
  if (builtin) return builtin
  if (!spec.includes('/') && !spec.includes('\\') && !/\.(m?js|ts)$/.test(spec))
    throw new BackendError(`unknown backend '${spec}' (built in: ${Object.keys(BACKENDS).join(', ')}; or a plugin module path)`)
  let mod: Record<string, unknown>
  try {
    mod = await import(pathToFileURL(path.resolve(spec)).href)
  } catch (e) {
    throw new BackendError(`cannot load backend plugin '${spec}': ${(e as Error).message}`)
  }
  const b = mod.default ?? mod.backend
  if (!isBackend(b)) throw new BackendError(`backend plugin '${spec}' does not export a Backend (name, pipeline, lower, print, summary) as default or 'backend'`)
  return b
}
