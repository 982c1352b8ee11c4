// Locates ../shared (beside the project root) or $MLX_TEST_SHARED, and skips
// tests cleanly when a file they need is absent.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const sharedDir = process.env.MLX_TEST_SHARED ?? resolve(root, '..', 'shared')

/** Absolute path of `rel` under shared/, or null (with a printed reason) when absent. */
export function sharedPath(rel) {
  const path = join(sharedDir, rel)
  if (!existsSync(path)) {
    console.log(`skipping: ${path} not found`)
    return null
  }
  return path
}

export function readSharedJson(rel) {
  const path = sharedPath(rel)
  return path && JSON.parse(readFileSync(path, 'utf8'))
}
