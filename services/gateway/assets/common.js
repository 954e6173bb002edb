// Shared by every page: translated strings, calls to /api with the CSRF token, prices and
// dates in the page's locale, live streams that reconnect, fragments swapped in place,
// notifications, confirmation dialogs, and the buttons that post one action (data-post).
// The session itself is an HttpOnly cookie: no token is ever in reach of this code.

import { cartCount, onCartChange } from './cart.js';

export const T = JSON.parse(document.getElementById('strings')?.textContent || '{}');
export const LOCALE = document.documentElement.dataset.locale || 'fr-FR';

/** A translated string with its {placeholders} filled. */
export function t(key, values = {}) {
  let text = T[key] ?? key;
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

/** `{n} article` or `{n} articles`. */
export function count(n, one, many) {
  return t(n === 1 ? one : many, { n });
}

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || '';
}

/**
 * Calls a service through the gateway. Resolves to { ok, status, data, code } and never
 * throws: a network failure is status 0.
 */
export async function api(method, url, body, headers = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json', 'X-CSRF-Token': csrfToken(), ...headers },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    return { ok: false, status: 0, data: null, code: 'network' };
  }
  let data = null;
  const text = await response.text().catch(() => '');
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  const code = typeof data?.type === 'string' ? data.type.split('/').pop() : null;
  if (response.status === 401) signInAgain();
  return { ok: response.ok, status: response.status, data, code };
}

/** The words for a failed call, in the page's language. */
export function problemMessage(result) {
  if (result.status === 0 || result.status === 503 || result.status === 504) return T.error_service;
  if (result.status === 403 && result.data?.field === 'x-csrf-token') return T.error_csrf;
  if (result.status === 401) return T.error_session;
  switch (result.code) {
    case 'order-too-late-to-cancel': return T.cancel_too_late;
    case 'order-dish-unavailable':
    case 'order-unknown-dish': return t('order_failed', { reason: T.sold_out });
    case 'order-invalid-address': return T.address_required;
    case 'ticket-undo-window-passed':
    case 'ticket-too-late-to-undo':
    case 'ticket-nothing-to-undo': return T.undo_too_late;
    default: return T.error_generic;
  }
}

let signingOut = false;
function signInAgain() {
  if (signingOut) return;
  signingOut = true;
  toast(T.error_session, 'error');
  const next = encodeURIComponent(location.pathname + location.search);
  setTimeout(() => { location.href = `/login?notice=session-ended&next=${next}`; }, 1500);
}

/** A price, as `12,50 €` or `€12.50`. */
export function money(value) {
  if (!value) return '';
  return new Intl.NumberFormat(LOCALE, { style: 'currency', currency: value.currency || 'EUR' })
    .format((value.amount || 0) / 100);
}

const dateTimeFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: 'long', timeStyle: 'short' });
const timeFormat = new Intl.DateTimeFormat(LOCALE, { timeStyle: 'short' });

/** Rewrites `<time datetime>` elements (rendered in UTC) in the browser's own time zone. */
export function localizeTimes(root = document) {
  for (const el of root.querySelectorAll('time[datetime][data-format]')) {
    const at = new Date(el.getAttribute('datetime'));
    if (Number.isNaN(at.getTime())) continue;
    el.textContent = el.dataset.format === 'time' ? timeFormat.format(at) : dateTimeFormat.format(at);
    el.title = dateTimeFormat.format(at);
  }
}

/** A short message at the bottom of the screen, read out by screen readers. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box || !message) return;
  // The same words twice in a row make one toast; never more than three at once.
  for (const old of box.querySelectorAll('.toast')) if (old.textContent === message) old.remove();
  while (box.children.length >= 3) box.firstElementChild.remove();
  const item = document.createElement('div');
  item.className = `toast toast-${kind}`;
  item.textContent = message;
  box.append(item);
  setTimeout(() => item.classList.add('leaving'), 3500);
  setTimeout(() => item.remove(), 4000);
}

/** Asks a yes/no question in the page's dialog. Resolves to true for yes. */
export function confirmDialog(message) {
  const dialog = document.getElementById('confirm-dialog');
  if (!dialog?.showModal) return Promise.resolve(window.confirm(message));
  dialog.querySelector('#confirm-message').textContent = message;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

/**
 * Fetches a fragment rendered by the gateway and puts it in `target` (its content). Resolves
 * to the HTTP status (0 when the network failed).
 */
const lastRefresh = new WeakMap();
export async function refresh(target, url = target?.dataset.fragment) {
  if (!target || !url) return 0;
  // Only the answer to the latest request is shown: answers may arrive out of order.
  const request = (lastRefresh.get(target) || 0) + 1;
  lastRefresh.set(target, request);
  let response;
  try {
    response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
  } catch {
    return 0;
  }
  if (response.status === 401) signInAgain();
  if (response.status !== 200) return response.status;
  const html = await response.text();
  if (lastRefresh.get(target) !== request) return 0;
  target.innerHTML = html;
  localizeTimes(target);
  target.dispatchEvent(new CustomEvent('brigade:refreshed', { bubbles: true }));
  return 200;
}

/**
 * Follows a live stream (server-sent events) and reconnects after any break, with a growing
 * pause (1 s to 30 s). The browser's own reconnection stops at the first error status (a
 * service down answers 503), so this one takes over. `onReconnect` runs after a break, to
 * catch up on what was missed.
 */
export class LiveStream {
  constructor(url, eventName, onMessage, { onReconnect, indicator } = {}) {
    this.url = url;
    this.eventName = eventName;
    this.onMessage = onMessage;
    this.onReconnect = onReconnect;
    this.indicator = indicator;
    this.delay = 1000;
    this.broken = false;
    this.closed = false;
    this.open();
  }

  open() {
    if (this.closed) return;
    this.source = new EventSource(this.url);
    this.source.addEventListener(this.eventName, (event) => {
      let data = null;
      try { data = JSON.parse(event.data); } catch { return; }
      this.onMessage(data);
    });
    this.source.addEventListener('open', () => {
      this.delay = 1000;
      this.show(true);
      if (this.broken) {
        this.broken = false;
        this.onReconnect?.();
      }
    });
    this.source.addEventListener('error', () => {
      this.show(false);
      this.broken = true;
      if (this.source.readyState === EventSource.CLOSED) {
        setTimeout(() => this.open(), this.delay);
        this.delay = Math.min(this.delay * 2, 30000);
      }
    });
  }

  show(connected) {
    if (!this.indicator) return;
    this.indicator.textContent = connected ? T.live_connected : T.live_reconnecting;
    this.indicator.classList.toggle('is-live', connected);
  }

  close() {
    this.closed = true;
    this.source?.close();
  }
}

let audio;
/** A short two-tone chime (no sound file: the page makes it). Needs a click first. */
export function chime() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === 'suspended') audio.resume();
    const now = audio.currentTime;
    [880, 1320].forEach((frequency, i) => {
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, now + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.3, now + i * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.18 + 0.3);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(now + i * 0.18);
      oscillator.stop(now + i * 0.18 + 0.32);
    });
  } catch {
    // No audio on this device: the screen still flashes the new ticket.
  }
}

// Buttons that post one action: <button data-post="/api/…">. The page's own script hears
// `brigade:done` (with the answer) to update what changed.
document.addEventListener('click', async (event) => {
  const button = event.target.closest('[data-post]');
  if (!button || button.disabled) return;
  event.preventDefault();
  button.disabled = true;
  button.classList.add('is-busy');
  const body = button.dataset.body ? JSON.parse(button.dataset.body) : {};
  const result = await api('POST', button.dataset.post, body);
  button.classList.remove('is-busy');
  button.disabled = false;
  if (!result.ok) {
    toast(problemMessage(result), 'error');
    button.dispatchEvent(new CustomEvent('brigade:failed', { bubbles: true, detail: result }));
    return;
  }
  button.dispatchEvent(new CustomEvent('brigade:done', { bubbles: true, detail: result }));
});

function showCartCount() {
  const n = cartCount();
  for (const badge of document.querySelectorAll('[data-cart-count]')) {
    badge.textContent = n;
    badge.hidden = n === 0;
  }
}

localizeTimes();
showCartCount();
onCartChange(showCartCount);
