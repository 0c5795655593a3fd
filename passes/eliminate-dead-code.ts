/** eliminate-dead-code: drop nodes that no graph output depends on. */
import { eliminateDead } from '../ir/rewrite.js'
import type { Pass } from './pass.js'

export const eliminateDeadCode: Pass = {
  name: 'eliminate-dead-code',
  doc: 'Remove nodes no graph output depends on (graph inputs stay).',
  run: (g) => eliminateDead(g),
}
