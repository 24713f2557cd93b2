// pg-copy-streams ships no types; this is the one function Lookalike uses.
declare module 'pg-copy-streams' {
  import type { Readable } from 'node:stream';
  import type { Submittable } from 'pg';
  export function to(text: string): Readable & Submittable;
}
