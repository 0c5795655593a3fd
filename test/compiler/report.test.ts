/**
 * `pic report`: the page for a digits model (CKKS, with accuracy) and an fmnist32 model (mpc), opened
 * in headless Chromium (playwright-core, /usr/bin/chromium): no console or page error, no request
 * leaving the file; every `svg[data-series=N]` draws N non-empty series; as many activation plots as
 * approximated activations counted by other commands (`pic eval --json`'s layers, the mpc schedule's
 * poly rows in `pic compile --json`); one table row per non-Constant node of the graph the API's
 * `compile` returns; the accuracy `pic eval` prints. Without Chromium the browser part is skipped
 * locally and fails under CI.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { compile } from '../../compiler/api.js'
import { loadModel } from '../../compiler/model.js'
import { readNpy, writeNpy } from '../../compiler/npy.js'
import { ROOT, pic } from '../helpers.js'

const CHROMIUM = '/usr/bin/chromium'
const tmp = mkdtempSync(path.join(tmpdir(), 'pic-report-'))
const fx = (set: string, f: string) => path.join(ROOT, 'test/fixtures', set, f)

interface Seen {
  errors: string[]
  requests: string[]
  plots: { series: number; drawn: number; empty: string[] }[]
  activationPlots: number
  layerRows: number
  text: string
}

/** Open the page in Chromium and collect what the checks need. */
async function open(file: string): Promise<Seen> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  try {
    const page = await browser.newPage()
    const errors: string[] = []
    const requests: string[] = []
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
    page.on('pageerror', (e) => errors.push(String(e)))
    page.on('request', (r) => r.url() !== pathToFileURL(file).href && requests.push(r.url()))
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' })
    const seen = await page.evaluate(() => {
      // the DOM as far as used here (the project's tsconfig has no DOM library)
      interface El {
        getAttribute(name: string): string | null
        querySelector(sel: string): El | null
        querySelectorAll(sel: string): Iterable<El> & { length: number }
        getBBox(): { width: number; height: number }
      }
      const document = (globalThis as unknown as { document: El & { body: { innerText: string } } }).document
      const plots = [...document.querySelectorAll('svg[data-series]')].map((svg) => {
        const groups = [...svg.querySelectorAll('g.series')]
        // a line: a path with a non-empty d; bars: the histogram's all taller than 0, a cost series at least one wider than 0
        const empty = groups.filter((g) => {
          const d = g.querySelector('path')?.getAttribute('d') ?? ''
          const rects = [...g.querySelectorAll('rect')].map((r) => r.getBBox())
          const hist = g.getAttribute('data-name') === 'calibration histogram'
          return !(d.length > 0 || (rects.length > 0 && (hist ? rects.every((b) => b.height > 0) : rects.some((b) => b.width > 0))))
        })
        return { series: Number(svg.getAttribute('data-series')), drawn: groups.length, empty: empty.map((g) => g.getAttribute('data-name') ?? '?') }
      })
      return { plots, activationPlots: document.querySelectorAll('#activations svg[data-series]').length, layerRows: document.querySelectorAll('table.layers tbody tr').length, text: document.body.innerText }
    })
    return { errors, requests, ...seen }
  } finally {
    await browser.close()
  }
}

function checkDrawn(seen: Seen): void {
  expect(seen.errors).toEqual([])
  expect(seen.requests).toEqual([])
  expect(seen.plots.length).toBeGreaterThan(0)
  for (const p of seen.plots) expect(p).toEqual({ series: p.series, drawn: p.series, empty: [] })
}

const browserOk = existsSync(CHROMIUM)
if (!browserOk && process.env.CI !== 'true') console.warn(`report.test.ts: ${CHROMIUM} is missing: the browser checks are skipped (they fail under CI)`)

describe('pic report', () => {
  it('digits cnn_gelu, CKKS, with accuracy: drawn in Chromium, counts and accuracy from pic eval', async () => {
    const model = fx('digits', 'cnn_gelu.onnx')
    const approx = ['--approx', 'chebyshev:8', '--calib', fx('digits', 'calib_x.npy')]
    const data = ['--data', fx('digits', 'test_x.npy'), '--labels', fx('digits', 'test_y.npy')]
    const out = path.join(tmp, 'digits.html')
    const r = pic('report', model, ...approx, '--backend', 'ckks', ...data, '-o', out, '--json', '--quiet')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const summary = JSON.parse(r.stdout)
    const ev = pic('eval', model, ...approx, ...data, '--json', '--quiet')
    expect(ev.code).toBe(0)
    const e = JSON.parse(ev.stdout)
    expect(summary.accuracy).toEqual({ ...e.accuracy, samples: e.samples })
    expect(summary.activationPlots).toBe(e.layers.length)
    expect(e.layers.length).toBeGreaterThan(0)
    const api = await compile(loadModel(model), 'ckks', { approx: 'chebyshev:8', calib: readNpy(fx('digits', 'calib_x.npy')) })
    const nodes = api.graph.nodes.filter((n) => n.op !== 'Constant').length
    expect(summary.layers).toBe(nodes)
    if (!browserOk) {
      if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing under CI: install Debian's chromium`)
      return
    }
    const seen = await open(out)
    checkDrawn(seen)
    expect(seen.activationPlots).toBe(e.layers.length)
    expect(seen.layerRows).toBe(nodes)
    // 2 cost charts + 1 per activation
    expect(seen.plots.length).toBe(2 + e.layers.length)
    // the per-layer estimates add up to the plan's own total
    const sums = /sum over layers ([-\d.e+]+) ms; the plan's estimate ([-\d.e+]+) ms/.exec(seen.text)
    expect(sums).not.toBeNull()
    expect(Number(sums![1])).toBe(Number(sums![2]))
    expect(seen.text).toContain(`original (top-1)\t${(100 * e.accuracy.original).toFixed(2)}%`)
    expect(seen.text).toContain(`compiled (top-1)\t${(100 * e.accuracy.compiled).toFixed(2)}%`)
  })

  it('fmnist32 resnet20, mpc with approximated ReLUs: drawn in Chromium, counted from the schedule, same bytes twice', async () => {
    const model = fx('fmnist32', 'resnet20.onnx')
    const c = readNpy(fx('fmnist32', 'calib_x.npy'))
    const per = c.data.length / c.shape[0]
    const calib = path.join(tmp, 'calib32.npy')
    writeNpy(calib, { ...c, shape: [32, ...c.shape.slice(1)], data: c.data.slice(0, 32 * per) })
    const args = [model, '--approx', 'chebyshev:2', '--calib', calib, '--backend', 'mpc', '--approx-relu']
    const out = path.join(tmp, 'fmnist32.html')
    const r = pic('report', ...args, '-o', out, '--json', '--quiet')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const summary = JSON.parse(r.stdout)
    const cj = pic('compile', ...args, '--json', '--quiet')
    expect(cj.code).toBe(0)
    const polys = (JSON.parse(cj.stdout).layers as { kind: string }[]).filter((l) => l.kind === 'poly').length
    expect(polys).toBe(19)
    expect(summary.activationPlots).toBe(polys)
    const again = path.join(tmp, 'fmnist32-again.html')
    expect(pic('report', ...args, '-o', again, '--quiet').code).toBe(0)
    expect(readFileSync(again).equals(readFileSync(out))).toBe(true)
    const api = await compile(loadModel(model), 'mpc', { approx: 'chebyshev:2', calib: readNpy(calib), approxRelu: true })
    const nodes = api.graph.nodes.filter((n) => n.op !== 'Constant').length
    expect(summary.layers).toBe(nodes)
    if (!browserOk) {
      if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing under CI: install Debian's chromium`)
      return
    }
    const seen = await open(out)
    checkDrawn(seen)
    expect(seen.activationPlots).toBe(polys)
    expect(seen.layerRows).toBe(nodes)
    expect(seen.plots.length).toBe(2 + polys)
    expect(seen.text).not.toContain('Accuracy')
    // the checks catch a broken page: a line emptied, a series group dropped, a console error
    const html = readFileSync(out, 'utf8')
    const broken = path.join(tmp, 'broken.html')
    writeFileSync(broken, html.replace(/<path d="[^"]*"/, '<path d=""').replace(/<g class="series" data-name="rounds"/, '<g data-name="rounds"').replace('</body>', "<script>console.error('boom')</script></body>"))
    const bad = await open(broken)
    expect(bad.errors).toEqual(['boom'])
    expect(bad.plots.filter((p) => p.empty.length > 0).length).toBe(1)
    expect(bad.plots.filter((p) => p.drawn !== p.series).length).toBe(1)
  })
})
