import type { Context, MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import type { DashboardAccess } from './access.js';

export const SESSION_COOKIE = 't2_session';
/** Every POST of the page carries it: a cross-site form cannot, and a cross-site script may not without a preflight the dashboard never grants. */
export const CSRF_HEADER = 'x-twister2-dashboard';

/** Headers for every answer: only the dashboard's own scripts and styles, no framing, no token in a Referer. */
export const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  c.header('content-security-policy', "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  c.header('x-content-type-options', 'nosniff');
  c.header('x-frame-options', 'DENY');
  c.header('referrer-policy', 'no-referrer');
  c.header('cache-control', 'no-store');
};

/**
 * People and scripts: the access token as `Authorization: Bearer`, or the session cookie that the login
 * link set. A POST also needs CSRF_HEADER and, when the browser says where it came from, this origin.
 */
export function requireAccess(access: DashboardAccess): MiddlewareHandler {
  return async (c, next) => {
    const bearer = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1];
    const ok = bearer !== undefined ? access.checkAccessToken(bearer) : access.checkSession(getCookie(c, SESSION_COOKIE));
    if (!ok) return refuse(c, 401, 'T2_UNAUTHENTICATED', 'the dashboard needs its access token: open the login link `twister2 dashboard` printed, or send Authorization: Bearer <token>');
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const origin = c.req.header('origin');
      if (c.req.header(CSRF_HEADER) !== '1' || (origin !== undefined && origin !== new URL(c.req.url).origin)) {
        return refuse(c, 403, 'T2_FORBIDDEN', `a cross-site request is refused (a POST needs the header ${CSRF_HEADER}: 1 and no foreign Origin)`);
      }
    }
    await next();
  };
}

/** `/?token=<token>`: sets the session cookie and sends the browser on without the token in its address bar. */
export function login(access: DashboardAccess, c: Context): Response | undefined {
  const token = c.req.query('token');
  if (token === undefined) return undefined;
  if (!access.checkAccessToken(token)) return refuse(c, 401, 'T2_UNAUTHENTICATED', 'this login link has a wrong or old token: use the one `twister2 dashboard` printed last');
  setCookie(c, SESSION_COOKIE, access.sessionValue(), { httpOnly: true, sameSite: 'Strict', path: '/' });
  return c.redirect('/', 303);
}

export function refuse(c: Context, status: 400 | 401 | 403 | 404 | 409 | 413 | 502, code: string, message: string): Response {
  return c.json({ error: { code, message } }, status);
}
