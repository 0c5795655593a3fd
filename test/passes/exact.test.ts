/**
 * Property: every exact pass, alone or in the common pipeline, leaves the interpreter's outputs on
 * every digits fixture unchanged (relative 1e-9; 1e-6 where GELU's float32 sqrt2 is replaced by the
 * exact one), and the common pipeline is idempotent.
 */
import { describe, expect, it } from 'vitest'
import { common } from '../../passes/pipelines.js'
import { MODELS } from '../helpers.js'
import { apply, expectSame, fixture, testX } from './util.js'

describe('exact passes keep outputs', () => {
  const x = [testX(32)]
  it.each(MODELS)('%s', (name) => {
    const g = fixture(name)
    for (const p of common) expectSame(g, apply(g, p), x, p.name === 'recognize-activations' && name === 'cnn_gelu' ? 1e-6 : 1e-9)
    const h = apply(g, ...common)
    expectSame(g, h, x, name === 'cnn_gelu' ? 1e-6 : 1e-9)
    expect(apply(h, ...common)).toEqual(h)
  })
})
