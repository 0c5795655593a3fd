import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from './helpers.js'

/** Imports flow one way: ir <- passes <- backends <- compiler. */
const LAYERS = ['ir', 'passes', 'backends', 'compiler']

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f)
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : []
  })
}

describe('layering', () => {
  it.each(LAYERS)('%s imports only from its own layer and the ones below', (layer) => {
    const allowed = new Set(LAYERS.slice(0, LAYERS.indexOf(layer) + 1))
    const bad: string[] = []
    for (const file of sources(path.join(ROOT, layer))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)\b[^'"]*from\s+'(\.[^']+)'/gm)) {
        const target = path.relative(ROOT, path.resolve(path.dirname(file), m[1])).split(path.sep)[0]
        if (LAYERS.includes(target) && !allowed.has(target)) bad.push(`${path.relative(ROOT, file)} imports ${m[1]}`)
      }
    }
    expect(bad).toEqual([])
  })
})
