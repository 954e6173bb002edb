// The kitchen screen, live: each change of the queue (the kitchen's stream) re-renders that
// ticket's card; a ticket that is no longer open leaves the screen; a new one chimes. Timers
// tick every second and turn amber (75 % of the target) then red (past it); an item's undo
// button disappears when its two minutes are up. The station filter
// and the sound choice are remembered by this screen.

import { T, t, count, refresh, toast, chime, api, problemMessage, confirmDialog, LiveStream } from './common.js';

const list = document.querySelector('[data-tickets]');
const empty = document.querySelector('[data-no-tickets]');
const counter = document.querySelector('[data-ticket-count]');
const soundButton = document.querySelector('[data-sound]');
const STATION_KEY = 'brigade.kitchen.station';
const SOUND_KEY = 'brigade.kitchen.sound';

let station = localStorage.getItem(STATION_KEY) || '';
let soundOn = localStorage.getItem(SOUND_KEY) === 'on';

function cards() {
  return [...list.querySelectorAll('.ticket')];
}

function summarize() {
  const visible = cards().filter((c) => !c.hidden).length;
  counter.textContent = count(visible, 'tickets_one', 'tickets_many');
  empty.hidden = visible > 0;
}

function applyStation() {
  if (station && !document.querySelector(`[data-station-filter="${CSS.escape(station)}"]`)) station = '';
  for (const button of document.querySelectorAll('[data-station-filter]')) {
    button.setAttribute('aria-pressed', String(button.dataset.stationFilter === station));
  }
  for (const card of cards()) {
    const stations = (card.dataset.stations || '').split(' ');
    card.hidden = station !== '' && !stations.includes(station);
    for (const item of card.querySelectorAll('.item')) {
      item.classList.toggle('other-station', station !== '' && item.dataset.station !== station);
    }
  }
  summarize();
}

function tick() {
  const now = Date.now();
  for (const card of cards()) {
    const placed = Date.parse(card.dataset.placedAt);
    const target = Number(card.dataset.targetSecs) || 900;
    const secs = Math.max(0, Math.floor((now - placed) / 1000));
    const timer = card.querySelector('[data-timer]');
    const minutes = Math.floor(secs / 60);
    timer.textContent = `${String(minutes).padStart(2, '0')}:${String(secs % 60).padStart(2, '0')}`;
    card.classList.toggle('late', secs > target);
    card.classList.toggle('warn', secs > target * 0.75 && secs <= target);
    // An undo button goes when the kitchen's window for it has passed.
    for (const undo of card.querySelectorAll('[data-undo-until]')) {
      undo.hidden = now > Date.parse(undo.dataset.undoUntil);
    }
  }
  const clock = document.querySelector('[data-clock]');
  if (clock) clock.textContent = new Intl.DateTimeFormat(document.documentElement.dataset.locale, { timeStyle: 'short' }).format(new Date());
}

/** When a card takes its place: when it was placed, or when a scheduled order should start. */
function queuedAt(card) {
  return Date.parse(card.dataset.queueAt || card.dataset.placedAt);
}

/** Puts a card in its place: the queue is sorted oldest order first, as the kitchen sorts it. */
function place(card) {
  const queued = queuedAt(card);
  const after = cards().find((c) => c !== card && queuedAt(c) > queued);
  list.insertBefore(card, after || null);
}

// The last request made for each ticket: an answer to an older one (a tap's and the stream's
// requests may cross) must not put an older card back.
const latest = new Map();

async function upsert(orderId, { announce } = {}) {
  const request = (latest.get(orderId) || 0) + 1;
  latest.set(orderId, request);
  let response;
  try {
    response = await fetch(`/kitchen/tickets/${orderId}`, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
  } catch {
    return;
  }
  if (latest.get(orderId) !== request) return;
  const existing = document.getElementById(`ticket-${orderId}`);
  if (response.status === 204 || response.status === 404) {
    existing?.classList.add('leaving');
    setTimeout(() => { existing?.remove(); summarize(); }, existing ? 400 : 0);
    return;
  }
  if (response.status !== 200) return;
  const html = (await response.text()).trim();
  if (latest.get(orderId) !== request) return;
  const holder = document.createElement('div');
  holder.innerHTML = html;
  const card = holder.firstElementChild;
  if (!card) return;
  if (existing) {
    existing.replaceWith(card);
  } else {
    place(card);
    if (announce) {
      card.classList.add('fresh');
      setTimeout(() => card.classList.remove('fresh'), 4000);
      toast(t('new_ticket', { id: `#${card.dataset.short}` }), 'info');
      if (soundOn) chime();
    }
  }
  applyStation();
  tick();
}

async function resync() {
  const status = await refresh(list, '/kitchen/tickets');
  if (status === 200) {
    applyStation();
    tick();
  }
}

const indicator = document.querySelector('[data-live-state]');
new LiveStream('/api/kitchen/tickets/stream', 'ticket', (change) => {
  const ticket = change.ticket;
  if (!ticket?.orderId) return;
  const known = Boolean(document.getElementById(`ticket-${ticket.orderId}`));
  if (ticket.status !== 'open') {
    if (known && ticket.status === 'ready') toast(t('ticket_ready', { id: `#${ticket.orderId.slice(0, 8).toUpperCase()}` }), 'success');
    upsert(ticket.orderId);
    return;
  }
  upsert(ticket.orderId, { announce: !known });
}, { onReconnect: resync, indicator });

// After a chef's tap, redraw the card at once (the stream confirms a moment later).
document.addEventListener('brigade:done', (event) => {
  const orderId = event.target.dataset.ticket;
  if (event.target.dataset.undo) toast(t('step_undone', { name: event.target.dataset.undo }), 'info');
  if (orderId) upsert(orderId);
});
// A refused undo (window passed, ticket ready meanwhile): the card shows the truth again.
document.addEventListener('brigade:failed', (event) => {
  const orderId = event.target.dataset.ticket;
  if (orderId) upsert(orderId);
});

document.addEventListener('click', async (event) => {
  const filter = event.target.closest('[data-station-filter]');
  if (filter) {
    station = filter.dataset.stationFilter;
    localStorage.setItem(STATION_KEY, station);
    applyStation();
    return;
  }
  // "Épuisé": the kitchen ran out of this dish; the menu stops offering it within a second.
  const soldOut = event.target.closest('[data-sold-out]');
  if (soldOut) {
    const name = soldOut.dataset.dishName;
    if (!(await confirmDialog(t('sold_out_confirm', { name })))) return;
    const result = await api('POST', `/api/kitchen/dishes/${soldOut.dataset.soldOut}/sold-out`, {});
    toast(result.ok ? t('sold_out_done', { name }) : problemMessage(result), result.ok ? 'success' : 'error');
    return;
  }
  const reject = event.target.closest('[data-reject]');
  if (reject) {
    const dialog = document.getElementById('reject-dialog');
    const reason = dialog.querySelector('#reject-reason');
    // The card's items, to say which dishes are missing (they are marked sold out too).
    const missing = dialog.querySelector('[data-reject-items]');
    const card = document.getElementById(`ticket-${reject.dataset.reject}`);
    const items = [...(card?.querySelectorAll('.item[data-dish-id]') || [])];
    missing.replaceChildren(missing.querySelector('legend'), ...items.map((item) => {
      const label = document.createElement('label');
      label.className = 'check';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.value = item.dataset.index;
      const text = document.createElement('span');
      text.textContent = item.dataset.dishName;
      label.append(box, text);
      return label;
    }));
    missing.hidden = items.length === 0;
    reason.value = '';
    dialog.returnValue = '';
    dialog.showModal();
    dialog.addEventListener('close', async () => {
      if (dialog.returnValue !== 'ok' || !reason.value.trim()) return;
      const soldOutItems = [...missing.querySelectorAll('input:checked')].map((box) => Number(box.value));
      const result = await api('POST', `/api/kitchen/tickets/${reject.dataset.reject}/reject`, { reason: reason.value.trim(), soldOutItems });
      if (!result.ok) toast(problemMessage(result), 'error');
      upsert(reject.dataset.reject);
    }, { once: true });
  }
});

function showSound() {
  soundButton.textContent = soundOn ? T.sound_on : T.sound_off;
  soundButton.setAttribute('aria-pressed', String(soundOn));
}
soundButton?.addEventListener('click', () => {
  soundOn = !soundOn;
  localStorage.setItem(SOUND_KEY, soundOn ? 'on' : 'off');
  showSound();
  if (soundOn) chime();
});
if (soundButton) showSound();

applyStation();
tick();
setInterval(tick, 1000);
