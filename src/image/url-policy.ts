/**
 * Which hosts a URL catalog may make Lookalike fetch (server-side request forgery). A
 * catalog's CSV is written by someone else, and the worker that fetches it sits inside a
 * network: by default only public unicast addresses are fetched. Loopback (this machine),
 * private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, where clouds
 * answer with credentials; fe80::/10), carrier-grade NAT, multicast, broadcast, unspecified
 * (0.0.0.0, ::) and reserved addresses are refused.
 *
 * The check is made on the addresses a name resolves to, and the connection is made to the
 * very address checked (a `lookup` given to the socket), at every redirect hop: a name
 * whose DNS answer changes between a check and a connect (DNS rebinding) gains nothing.
 * A shop's own image server on a private network is allowed by naming it (`allowHosts`,
 * `--allow-host`, LOOKALIKE_ALLOW_HOSTS): the name as written in the URL, or an address.
 */
import dns from 'node:dns';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { LookalikeError } from '../errors.js';

/** The addresses a name resolves to (dns.lookup by default; a stub in tests, a custom resolver for a program). */
export type Resolver = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

export const systemResolver: Resolver = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

const RANGE_NAMES: Record<string, string> = {
  loopback: 'a loopback address (this machine)',
  unspecified: 'the unspecified address (this machine)',
  private: 'a private network address',
  uniqueLocal: 'a private (unique local) IPv6 address',
  linkLocal: 'a link-local address (169.254.x.x holds cloud metadata services)',
  carrierGradeNat: 'a carrier-grade NAT address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
};

/**
 * Why `address` is not fetched by default (a phrase), or undefined for a public unicast
 * address. IPv4 written inside IPv6 (::ffff:127.0.0.1, NAT64's 64:ff9b::/96) is judged as
 * the IPv4 address it carries.
 */
export function refusedRange(address: string): string | undefined {
  let ip: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    ip = ipaddr.parse(address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
  } catch {
    return 'not an IP address';
  }
  if (ip.kind() === 'ipv6') {
    const v6 = ip as ipaddr.IPv6;
    const p = v6.parts;
    if (v6.isIPv4MappedAddress()) ip = v6.toIPv4Address();
    else if (p[0] === 0x64 && p[1] === 0xff9b && p.slice(2, 6).every((x) => x === 0)) ip = new ipaddr.IPv4([p[6] >> 8, p[6] & 0xff, p[7] >> 8, p[7] & 0xff]);
  }
  const range = ip.range();
  if (range === 'unicast') return undefined;
  return RANGE_NAMES[range] ?? `a special-purpose address (${range})`;
}

/** A host as the allow list compares it: lower case, no IPv6 brackets, no trailing dot; addresses in their normal form. */
export function normaliseHost(host: string): string {
  const bare = host.trim().toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  return net.isIP(bare) ? ipaddr.parse(bare).toString() : bare;
}

const HOST_NAME = /^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * An allow list as given (`--allow-host a,b`, repeated, or the environment), checked: each
 * entry a host name or an IP address, not a URL or a range. BAD_OPTION otherwise.
 */
export function parseAllowHosts(values: string | readonly string[] | undefined): string[] {
  const entries = (typeof values === 'string' ? [values] : values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  return entries.map((entry) => {
    const host = normaliseHost(entry);
    if (!net.isIP(host) && !HOST_NAME.test(host)) {
      throw new LookalikeError('BAD_OPTION', { message: `--allow-host takes host names or IP addresses (e.g. images.shop.internal,10.0.0.5), not "${entry.slice(0, 60)}".` });
    }
    return host;
  });
}

export interface UrlPolicy {
  /** Hosts fetched even when they resolve to a refused address. */
  allowHosts?: readonly string[];
  resolve?: Resolver;
}

/** The refusal of one hop: not retried, recorded as the item's failure. */
export function refused(url: string, host: string, why: string, address?: string): LookalikeError {
  return new LookalikeError('IMAGE_URL_REFUSED', { url, host, why: address && address !== host ? `${host} resolves to ${address}, ${why}` : `${host} is ${why}` });
}

/**
 * The checks of one request to `target` (every hop): an address in the URL is judged at
 * once; a name is judged by what it resolves to, in `lookup`, which hands the socket the
 * address it checked. `url` names the catalog's URL in the refusal.
 */
export function policyFor(url: string, target: URL, policy: UrlPolicy): { lookup?: net.LookupFunction } {
  const host = normaliseHost(target.hostname);
  const allowed = new Set((policy.allowHosts ?? []).map(normaliseHost)).has(host);
  if (net.isIP(host)) {
    const why = allowed ? undefined : refusedRange(host);
    if (why) throw refused(url, host, why);
    return {};
  }
  const resolve = policy.resolve ?? systemResolver;
  const lookup = ((hostname: string, options: dns.LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void) => {
    resolve(hostname).then((addresses) => {
      if (!addresses.length) throw Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' });
      // One refused address refuses the name: a host that also answers 127.0.0.1 is not a shop's CDN.
      for (const a of addresses) {
        const why = allowed ? undefined : refusedRange(a.address);
        if (why) throw refused(url, host, why, a.address);
      }
      const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
      if (!wanted.length) throw Object.assign(new Error(`${hostname} has no IPv${options.family} address`), { code: 'ENOTFOUND' });
      if (options.all) callback(null, wanted.map((a) => ({ address: a.address, family: a.family })));
      else callback(null, wanted[0].address, wanted[0].family);
    }).catch((err: NodeJS.ErrnoException) => callback(err, ''));
  }) as net.LookupFunction;
  return { lookup };
}
