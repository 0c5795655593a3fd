/** placeDiagonals (integer arithmetic, the fast path) against placeDiagonalsGeneral (the rule in floating point) on random maps and layouts. */
import { describe, expect, it } from 'vitest'
import { candidateSpecs, contiguousLayout, im2colLayout, layoutOfSpec, placeDiagonals, placeDiagonalsGeneral, type SparseCols } from '../../../backends/ckks/layout.js'
import { xorshift32 } from '../../helpers.js'

function randomMap(rows: number, cols: number, perCol: number, next: () => number): SparseCols {
  const start = new Int32Array(cols + 1)
  const idx: number[] = []
  const val: number[] = []
  for (let j = 0; j < cols; j++) {
    const set = new Set<number>()
    for (let k = 0; k < perCol; k++) set.add(next() % rows)
    for (const r of [...set].sort((a, b) => a - b)) {
      idx.push(r)
      val.push(((next() % 2001) - 1000) / 100)
    }
    start[j + 1] = idx.length
  }
  return { rows, cols, start, idx: Int32Array.from(idx), val: Float64Array.from(val) }
}

describe('placeDiagonals', () => {
  it('places every nonzero exactly as the general rule does', () => {
    const next = xorshift32(12345)
    for (let trial = 0; trial < 40; trial++) {
      const S = 2 ** (6 + (next() % 5))
      const cols = 1 + (next() % Math.min(S, 200))
      const rows = 1 + (next() % Math.min(S, 200))
      const m = randomMap(rows, cols, 1 + (next() % 6), next)
      const layouts = [contiguousLayout(cols, S)]
      const im = im2colLayout(m, S, 8)
      if (im) layouts.push(im.layout)
      for (const spec of candidateSpecs(cols, S)) if (spec.kind === 'replicated' ? cols <= spec.B : spec.kind === 'blockRows' && spec.R <= spec.B && Math.ceil(cols / spec.R) <= S / spec.B) layouts.push(layoutOfSpec(spec, cols, S))
      for (const layout of layouts)
        for (const spec of candidateSpecs(rows, S, [layout.spec?.kind === 'replicated' ? layout.spec.B : S])) {
          const terms = [{ layout, map: m }]
          expect(placeDiagonals(terms, spec, rows)).toEqual(placeDiagonalsGeneral(terms, spec, rows))
          expect(placeDiagonals(terms, spec, rows, Infinity, true)).toEqual(placeDiagonalsGeneral(terms, spec, rows, Infinity, true))
          expect(placeDiagonals(terms, spec, rows, 6, true)).toEqual(placeDiagonalsGeneral(terms, spec, rows, 6, true))
        }
    }
  })
})
