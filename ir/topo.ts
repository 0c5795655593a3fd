/**
 * Topological order and cycle detection over a graphlib graph. Kahn's algorithm runs iteratively, so
 * a 10,000-node chain costs no stack. The nodes it leaves over are on or behind a cycle; walking back
 * from one of them through leftover predecessors must repeat a node, and the walk from that node
 * back to itself is the cycle the error names (iterative too, whatever the cycle's length).
 */
import graphlib from '@dagrejs/graphlib'

export class CycleError extends Error {
  constructor(readonly cycle: string[]) {
    super(`cycle through ${cycle.map((c) => `'${c}'`).join(' -> ')}`)
  }
}

/** Order node ids so that every edge [from, to] goes forward; ties keep the given order. */
export function topoOrder(ids: readonly string[], edges: readonly (readonly [string, string])[]): string[] {
  const g = new graphlib.Graph({ directed: true, multigraph: false })
  for (const id of ids) g.setNode(id)
  for (const [a, b] of edges) g.setEdge(a, b)
  const position = new Map(ids.map((id, i) => [id, i]))
  const indeg = new Map<string, number>()
  for (const id of ids) indeg.set(id, g.predecessors(id)?.length ?? 0)
  const ready = ids.filter((id) => indeg.get(id) === 0)
  const order: string[] = []
  const heap = new MinHeap((a: string, b: string) => position.get(a)! - position.get(b)!)
  for (const r of ready) heap.push(r)
  while (heap.size > 0) {
    const id = heap.pop()!
    order.push(id)
    for (const s of g.successors(id) ?? []) {
      const d = indeg.get(s)! - 1
      indeg.set(s, d)
      if (d === 0) heap.push(s)
    }
  }
  if (order.length < ids.length) {
    const done = new Set(order)
    const step = (v: string) => g.predecessors(v)!.find((p) => !done.has(p))!
    const seen = new Set<string>()
    let v = ids.find((id) => !done.has(id))!
    while (!seen.has(v)) {
      seen.add(v)
      v = step(v)
    }
    const cycle = [v]
    for (let u = step(v); u !== v; u = step(u)) cycle.push(u)
    throw new CycleError(cycle.sort((a, b) => position.get(a)! - position.get(b)!))
  }
  return order
}

/** A small binary heap, so that ready nodes come out in file order. */
class MinHeap<T> {
  private items: T[] = []
  constructor(private readonly less: (a: T, b: T) => number) {}
  get size(): number {
    return this.items.length
  }
  push(x: T): void {
    const a = this.items
    a.push(x)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (this.less(a[i], a[p]) >= 0) break
      ;[a[i], a[p]] = [a[p], a[i]]
      i = p
    }
  }
  pop(): T | undefined {
    const a = this.items
    if (a.length === 0) return undefined
    const top = a[0]
    const last = a.pop()!
    if (a.length > 0) {
      a[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < a.length && this.less(a[l], a[m]) < 0) m = l
        if (r < a.length && this.less(a[r], a[m]) < 0) m = r
        if (m === i) break
        ;[a[i], a[m]] = [a[m], a[i]]
        i = m
      }
    }
    return top
  }
}
