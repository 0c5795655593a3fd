/**
 * The README's "Programmatic API" example, run as written (importing the package root by path
 * instead of '@pic-compiler/pic'), and the root's exports.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { ROOT } from '../helpers.js'

const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
const section = readme.slice(readme.indexOf('## Programmatic API'))
const example = /```ts\n([\s\S]*?)```/.exec(section)![1]
const file = path.join(ROOT, 'test', 'api', `.readme-example-${process.pid}.ts`)

afterAll(() => rmSync(file, { force: true }))

describe('programmatic API', () => {
  it('runs the README example and matches PyTorch to float32 precision', async () => {
    const code = example.replace("from '@pic-compiler/pic'", "from '../../index.js'") + '\nexport { compiled, logits, maxAbsError }\n'
    writeFileSync(file, code)
    const log = vi.spyOn(console, 'log').mockImplementation(() => {})
    const err = vi.spyOn(console, 'error').mockImplementation(() => {})
    try {
      const mod = await import(file)
      expect(mod.maxAbsError).toBeLessThan(1e-4)
      expect(mod.logits.shape).toEqual([497, 10])
      expect(mod.compiled.nodes.filter((n: { op: string }) => n.op === 'Poly').length).toBe(2)
      expect(err.mock.calls.map((c) => String(c[0]).split(':')[0])).toContain('after fold-polynomials')
      expect(String(log.mock.calls[0][0])).toMatch(/= Poly\(/)
    } finally {
      log.mockRestore()
      err.mockRestore()
    }
  })

  it('exports the pieces the README names', async () => {
    const api = await import('../../index.js')
    for (const name of ['importModel', 'writeModel', 'runPipeline', 'interpret', 'GraphBuilder', 'printGraph', 'PIPELINES', 'PASSES', 'common', 'lowerForExport', 'ortAccelerator', 'ortVersion',
      'compile', 'compileGraph', 'BACKENDS', 'loadBackend', 'runPlan', 'simulatePlan', 'startCkksServer', 'queryCkks', 'startMpcDealer', 'startMpcServer', 'queryMpc', 'PicError'])
      expect(api).toHaveProperty(name)
    expect(Object.keys(api.PASSES)).toContain('fold-polynomials')
  })
})
