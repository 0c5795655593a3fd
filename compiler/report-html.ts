/**
 * The HTML and SVG of `pic report`: small pure functions from data to markup, no JavaScript, no
 * network, no fonts beyond the browser's own. Every chart is an `<svg data-series="N">` holding N
 * `<g class="series">` groups (bars as `<rect>`, lines as one `<path>`), so a test or a reader can
 * check what was drawn. Numbers print through `num` (4 significant digits), so the same data gives
 * the same bytes.
 */

/** Text for HTML content and attribute values. */
export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** A number for people: integers as they are, others with 4 significant digits. */
export function num(v: number): string {
  if (!Number.isFinite(v)) return String(v)
  if (Number.isInteger(v)) return String(v)
  const a = Math.abs(v)
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(Number(v.toPrecision(4)))
}

/** Coordinates in SVG: 2 decimals. */
const c = (v: number) => String(Math.round(v * 100) / 100)

const COLORS = ['#4c78a8', '#f58518', '#54a24b', '#e45756']

/** A table: header cells, then rows of cells (already markup when `raw`, else escaped). */
export function table(head: readonly string[], rows: readonly (readonly (string | number)[])[], cls = ''): string {
  const cell = (v: string | number, tag: string) => `<${tag}${typeof v === 'number' ? ' class="n"' : ''}>${esc(typeof v === 'number' ? num(v) : v)}</${tag}>`
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${head.map((h) => cell(h, 'th')).join('')}</tr></thead><tbody>\n${rows.map((r) => `<tr>${r.map((v) => cell(v, 'td')).join('')}</tr>`).join('\n')}\n</tbody></table>`
}

/** Key-value pairs as a two-column table. */
export function facts(pairs: readonly [string, string | number][]): string {
  return table(['', ''], pairs, 'facts')
}

export interface BarSeries {
  name: string
  values: readonly number[]
}

/**
 * Horizontal bars, one row per label, one bar per series in each row, all on one linear axis from 0
 * to the largest value (a zero draws a zero-width bar).
 */
export function barChart(title: string, labels: readonly string[], series: readonly BarSeries[], unit: string): string {
  const left = 170
  const width = 420
  const barH = 10
  const rowH = series.length * barH + 6
  const top = 24
  const H = top + labels.length * rowH + 20
  const max = Math.max(1e-300, ...series.flatMap((s) => s.values))
  const groups = series.map((s, k) => {
    const bars = s.values.map((v, i) => `<rect x="${left}" y="${c(top + i * rowH + k * barH)}" width="${c((Math.max(0, v) / max) * width)}" height="${barH - 1}"><title>${esc(`${labels[i]}: ${num(v)} ${unit}`)}</title></rect>`)
    return `<g class="series" data-name="${esc(s.name)}" fill="${COLORS[k % COLORS.length]}">${bars.join('')}</g>`
  })
  const names = labels.map((l, i) => `<text x="${left - 4}" y="${c(top + i * rowH + rowH / 2)}" text-anchor="end" dominant-baseline="middle">${esc(l.length > 26 ? `${l.slice(0, 25)}…` : l)}</text>`)
  const legend = series.map((s, k) => `<tspan fill="${COLORS[k % COLORS.length]}">■ ${esc(s.name)}</tspan>`).join(' ')
  return (
    `<svg data-series="${series.length}" xmlns="http://www.w3.org/2000/svg" width="${left + width + 70}" height="${H}" viewBox="0 0 ${left + width + 70} ${H}" role="img" aria-label="${esc(title)}">` +
    `<text x="0" y="14" class="t">${esc(title)}</text><text x="${left}" y="${H - 6}">0</text><text x="${left + width}" y="${H - 6}" text-anchor="end">${esc(`${num(max)} ${unit}`)}</text>` +
    `<text x="${left + width + 68}" y="14" text-anchor="end">${legend}</text>${names.join('')}${groups.join('')}</svg>`
  )
}

export interface Line {
  name: string
  xs: ArrayLike<number>
  ys: ArrayLike<number>
}

/**
 * A histogram (bars, its own vertical scale: the tallest bin fills the plot) under lines (a shared
 * vertical scale over every line's values), on one horizontal axis: the histogram's [lo, hi].
 */
export function histogramPlot(title: string, hist: { lo: number; hi: number; counts: readonly number[] }, lines: readonly Line[]): string {
  const W = 520
  const H = 240
  const m = { l: 48, r: 10, t: 38, b: 28 }
  const pw = W - m.l - m.r
  const ph = H - m.t - m.b
  const span = hist.hi - hist.lo || 1
  const X = (x: number) => m.l + ((x - hist.lo) / span) * pw
  const maxCount = Math.max(1, ...hist.counts)
  const bw = pw / hist.counts.length
  const bars = hist.counts.map((n, i) => (n > 0 ? `<rect x="${c(m.l + i * bw)}" y="${c(m.t + ph - (n / maxCount) * ph)}" width="${c(Math.max(0.5, bw - 0.5))}" height="${c((n / maxCount) * ph)}"/>` : '')).join('')
  const all = lines.flatMap((l) => Array.from(l.ys))
  const ylo = Math.min(...all)
  const yhi = Math.max(...all)
  const yspan = yhi - ylo || 1
  const Y = (y: number) => m.t + ph - ((y - ylo) / yspan) * ph
  const paths = lines.map((l, k) => {
    const d = Array.from(l.xs, (x, i) => `${i ? 'L' : 'M'}${c(X(x))} ${c(Y(l.ys[i]))}`).join('')
    return `<g class="series" data-name="${esc(l.name)}"><path d="${d}" fill="none" stroke="${COLORS[(k + 1) % COLORS.length]}" stroke-width="${k ? 1.5 : 2.5}"${k ? ' stroke-dasharray="5 3"' : ''}/></g>`
  })
  const legend = [`<tspan fill="#bbb">■ calibration histogram</tspan>`, ...lines.map((l, k) => `<tspan fill="${COLORS[(k + 1) % COLORS.length]}">— ${esc(l.name)}</tspan>`)].join(' ')
  return (
    `<svg data-series="${lines.length + 1}" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">` +
    `<text x="0" y="14" class="t">${esc(title)}</text><text x="${m.l}" y="30">${legend}</text>` +
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>` +
    `<g class="series" data-name="calibration histogram" fill="#ccc">${bars}</g>${paths.join('')}` +
    `<text x="${m.l}" y="${H - 10}">${esc(num(hist.lo))}</text><text x="${W - m.r}" y="${H - 10}" text-anchor="end">${esc(num(hist.hi))}</text>` +
    `<text x="${m.l - 4}" y="${m.t + 8}" text-anchor="end">${esc(num(yhi))}</text><text x="${m.l - 4}" y="${m.t + ph}" text-anchor="end">${esc(num(ylo))}</text></svg>`
  )
}

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
h1{font-size:20px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}table.facts thead{display:none}
svg{display:block;margin:10px 0;font:11px system-ui,sans-serif}svg text.t{font-weight:600;font-size:12px}
.plot{display:inline-block;vertical-align:top;width:520px;margin-right:16px}p.note{color:#666}`

/** The page: a title and sections, each `<section id>` with a heading. */
export function page(title: string, sections: readonly { id: string; title: string; html: string }[]): string {
  const body = sections.map((s) => `<section id="${esc(s.id)}"><h2>${esc(s.title)}</h2>\n${s.html}\n</section>`).join('\n')
  return `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${esc(title)}</title><style>${CSS}</style></head>\n<body><h1>${esc(title)}</h1>\n${body}\n</body></html>\n`
}
