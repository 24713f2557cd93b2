/**
 * A firewall for tests of the URL policy: while it is up, no TCP connection of this process
 * may go to an address off this machine. Tests feed the policy private, link-local and ULA
 * addresses (from a stub resolver) and expect refusals; should the policy ever regress,
 * this stops the connection (with the error code EFIREWALL) instead of letting a test send
 * packets to 169.254.169.254 or 10.x. It wraps net.Socket.prototype.connect: an address in
 * the options is checked at once, a name at the address its lookup returns.
 */
import net from 'node:net';
import dns from 'node:dns';

const isLoopback = (address: string) => /^127\./.test(address) || address === '::1' || /^::ffff:127\./i.test(address);

function blocked(address: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`test firewall: no connection to ${address} (off this machine)`), { code: 'EFIREWALL' });
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;
type Lookup = (hostname: string, options: dns.LookupOptions, callback: LookupCallback) => void;

/** Puts the firewall up; the function returned takes it down. */
export function raiseFirewall(): () => void {
  const connect = net.Socket.prototype.connect;
  const guarded = function (this: net.Socket, ...args: unknown[]): net.Socket {
    // net.connect hands over [options, callback] as one normalised array.
    const options = (Array.isArray(args[0]) ? args[0][0] : args[0]) as (net.TcpNetConnectOpts & { lookup?: Lookup }) | undefined;
    if (options && typeof options === 'object' && 'port' in options) {
      const host = options.host ?? 'localhost';
      if (net.isIP(host) && !isLoopback(host)) {
        process.nextTick(() => this.destroy(blocked(host)));
        return this;
      }
      const lookup: Lookup = options.lookup ?? (dns.lookup as unknown as Lookup);
      options.lookup = ((hostname: string, o: dns.LookupOptions, callback: LookupCallback) => lookup(hostname, o, (err, address, family) => {
        if (err) return callback(err, address, family);
        const all = Array.isArray(address) ? address.map((a) => a.address) : [address];
        const off = all.find((a) => !isLoopback(a));
        if (off) return callback(blocked(off), '');
        callback(null, address, family);
      })) as Lookup;
    }
    return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
  };
  net.Socket.prototype.connect = guarded as typeof connect;
  return () => { net.Socket.prototype.connect = connect; };
}
