/**
 * The trainer bridge's bearer token and the file that hands it to the trainer: a file of its own
 * (mode 0600, in a 0700 directory) under the data dir, one per namespace and run. A bridge started
 * again for the same run reads the token it wrote before, so a trainer that outlives a bridge
 * restart keeps working; only the file holds the token (never the log, an event or a message).
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { escapeToken } from "../../events/subjects.ts"

/** Where the bridge of `runId` keeps its token by default. */
export const bridgeTokenFile = (dataDir: string, namespace: string, runId: string): string =>
  path.resolve(dataDir, "bridge", `${namespace}.${escapeToken(runId)}.token`)

export class BridgeTokenError extends Error {
  override readonly name = "BridgeTokenError"
}

/**
 * The token in `file`, or a new random one written there (0600) when the file does not exist.
 * `generated` says which, for the start message.
 */
export const loadOrCreateBridgeToken = (
  file: string,
): { readonly token: string; readonly generated: boolean } => {
  let text: string | undefined
  try {
    text = fs.readFileSync(file, "utf8")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT")
      throw new BridgeTokenError(`token file ${file}: ${(error as Error).message}`)
  }
  if (text !== undefined) {
    const token = text.trim()
    if (!/^\S{16,512}$/.test(token))
      throw new BridgeTokenError(
        `token file ${file}: must hold one token of 16 to 512 characters without spaces (delete the file to have one generated)`,
      )
    return { token, generated: false }
  }
  const token = randomBytes(32).toString("base64url")
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
    // `wx`: a bridge starting at the same moment keeps the token the other wrote.
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600, flag: "wx" })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return loadOrCreateBridgeToken(file)
    throw new BridgeTokenError(`token file ${file}: cannot write it: ${(error as Error).message}`)
  }
  return { token, generated: true }
}
