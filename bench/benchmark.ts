/** What a benchmark is to the runner (`main.ts`): a name, a line of help, and a run over its flags. */
export interface Benchmark {
  readonly name: string
  readonly summary: string
  /** Runs with the flags after the name; resolves to the process exit code. */
  readonly run: (args: ReadonlyArray<string>) => Promise<number>
}
