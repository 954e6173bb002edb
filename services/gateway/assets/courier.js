// The courier's app: shift on and off, the current delivery kept up to date (its stream, and a
// look every few seconds for a new assignment, since the API has no courier-wide stream), one
// big button per step, and the phone's position shared while a delivery is under way.

import { T, api, problemMessage, refresh, toast, chime, LiveStream } from './common.js';

const live = document.getElementById('courier-live');
const geoState = document.querySelector('[data-geo-state]');
const POLL_MS = 5000;
const POSITION_EVERY_MS = 10000;

let current = null; // { id, status }
let deliveryStream = null;
let watch = null;
let lastSent = 0;

function state() {
  const el = live.querySelector('[data-on-shift]');
  return {
    onShift: el?.dataset.onShift === 'true',
    id: el?.dataset.current || null,
    status: el?.dataset.currentStatus || null,
  };
}

function follow() {
  const now = state();
  if (now.id && now.id !== current?.id) {
    toast(T.new_assignment, 'success');
    chime();
    navigator.vibrate?.(200);
    deliveryStream?.close();
    deliveryStream = new LiveStream(`/api/delivery/deliveries/${now.id}/stream`, 'delivery', update, { onReconnect: update });
  }
  if (!now.id && deliveryStream) {
    deliveryStream.close();
    deliveryStream = null;
  }
  current = now.id ? { id: now.id, status: now.status } : null;
  share(Boolean(now.onShift && now.id));
}

async function update() {
  if (live.contains(document.activeElement) && document.activeElement.matches('input')) return;
  await refresh(live);
  follow();
}

// The phone's position, while carrying a delivery.
function share(on) {
  if (!on) {
    if (watch !== null) navigator.geolocation.clearWatch(watch);
    watch = null;
    geoState.hidden = true;
    return;
  }
  if (watch !== null || !navigator.geolocation) return;
  watch = navigator.geolocation.watchPosition(async (position) => {
    geoState.hidden = false;
    geoState.textContent = T.sharing_position;
    geoState.classList.remove('is-off');
    if (Date.now() - lastSent < POSITION_EVERY_MS) return;
    lastSent = Date.now();
    await api('POST', '/api/delivery/couriers/me/position', {
      lat: position.coords.latitude, lon: position.coords.longitude,
    });
  }, () => {
    geoState.hidden = false;
    geoState.textContent = T.position_denied;
    geoState.classList.add('is-off');
  }, { enableHighAccuracy: true, maximumAge: 5000, timeout: 20000 });
}

document.addEventListener('click', async (event) => {
  const shift = event.target.closest('[data-shift]');
  if (shift) {
    shift.disabled = true;
    const result = await api('POST', '/api/delivery/couriers/me/shift', { onShift: shift.dataset.shift === 'true' });
    if (!result.ok) toast(problemMessage(result), 'error');
    await update();
    return;
  }
  const fail = event.target.closest('[data-fail]');
  if (fail) {
    const dialog = document.getElementById('fail-dialog');
    dialog.returnValue = '';
    dialog.showModal();
    dialog.addEventListener('close', async () => {
      if (dialog.returnValue !== 'ok') return;
      const reason = dialog.querySelector('input[name="reason"]:checked')?.value || T.could_not_deliver;
      const result = await api('POST', `/api/delivery/deliveries/${fail.dataset.fail}/fail`, { reason });
      if (!result.ok) toast(problemMessage(result), 'error');
      await update();
    }, { once: true });
  }
});

document.addEventListener('submit', async (event) => {
  const form = event.target.closest('[data-deliver]');
  if (!form) return;
  event.preventDefault();
  const button = form.querySelector('button');
  button.disabled = true;
  const receivedBy = form.elements.receivedBy.value.trim();
  const result = await api('POST', `/api/delivery/deliveries/${form.dataset.deliver}/deliver`, receivedBy ? { receivedBy } : {});
  button.disabled = false;
  if (result.ok) toast(T.delivery_done, 'success');
  else toast(problemMessage(result), 'error');
  document.activeElement?.blur();
  await update();
});

document.addEventListener('brigade:done', update);

const initial = state();
current = initial.id ? { id: initial.id, status: initial.status } : null;
if (current) {
  deliveryStream = new LiveStream(`/api/delivery/deliveries/${current.id}/stream`, 'delivery', update, { onReconnect: update });
}
share(Boolean(initial.onShift && initial.id));
setInterval(() => { if (document.visibilityState === 'visible') update(); }, POLL_MS);
