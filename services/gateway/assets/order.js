// The order page, live: the order's stream and its delivery's stream each say "something
// changed"; the page then fetches its live part again (status, timeline, courier), rendered by
// the gateway. No reload, ever: the customer watches each step arrive.

import './history.js';
import { T, api, problemMessage, refresh, toast, confirmDialog, LiveStream } from './common.js';

const page = document.querySelector('.order-page');
const live = document.getElementById('order-live');
const orderId = page?.dataset.orderId;

// Every status this page has shown, in order (what the browser tests read).
const seen = [];
function noteStatus() {
  const status = live?.querySelector('[data-status]')?.dataset.status;
  if (status && seen[seen.length - 1] !== status) seen.push(status);
  if (page) page.dataset.seen = seen.join(' ');
}

function finished() {
  return live?.querySelector('[data-finished]')?.dataset.finished === 'true';
}

let pending = null;
function update() {
  clearTimeout(pending);
  pending = setTimeout(async () => {
    await refresh(live);
    noteStatus();
    if (finished()) {
      orderStream?.close();
      deliveryStream?.close();
    }
  }, 120);
}

let orderStream = null;
let deliveryStream = null;
if (orderId) {
  noteStatus();
  if (!finished()) {
    orderStream = new LiveStream(`/api/orders/orders/${orderId}/stream`, 'order', update, { onReconnect: update });
    // The delivery exists from when the kitchen accepts the order; until then its stream
    // answers 404 and is tried again after a pause.
    deliveryStream = new LiveStream(`/api/delivery/deliveries/${orderId}/stream`, 'delivery', update, { onReconnect: update });
  }
}

document.addEventListener('click', async (event) => {
  const button = event.target.closest('[data-cancel-order]');
  if (!button) return;
  if (!(await confirmDialog(T.cancel_confirm))) return;
  button.disabled = true;
  const result = await api('POST', `/api/orders/orders/${button.dataset.cancelOrder}/cancel`, {});
  button.disabled = false;
  if (result.ok) toast(T.order_cancelled, 'success');
  else toast(problemMessage(result), 'error');
  update();
});
