// The manager's console: the board refreshes every few seconds and at each change of the
// kitchen queue; manual assignment; the menu editor; staff and couriers; webhooks; dead
// letters (replayed or discarded, each leaves the list once done).

import { T, t, api, problemMessage, refresh, toast, confirmDialog, LiveStream } from './common.js';

// Buttons with data-reload show the page again once their action is done.
document.addEventListener('brigade:done', (event) => {
  if (event.target.closest('[data-reload]')) {
    toast(T.retried, 'success');
    setTimeout(() => location.reload(), 600);
  }
});

/** A dead letter handled: it leaves the list; the last one of the page says so. */
function deadLetterHandled(row, message) {
  toast(message, 'success');
  const section = row?.closest('[data-dead-letters]');
  row?.remove();
  if (section && !section.querySelector('[data-dead-letter]')) section.remove();
  const empty = document.querySelector('[data-no-dead-letters]');
  if (empty && !document.querySelector('[data-dead-letter]') && !document.querySelector('[data-unavailable]')) {
    empty.hidden = false;
  }
}

function deadLetterProblem(result) {
  switch (result.code) {
    case 'dead-letter-still-failing': return T.dead_letter_still_failing;
    case 'dead-letter-closed':
    case 'dead-letter-not-found': return T.dead_letter_closed;
    default: return problemMessage(result);
  }
}

const board = document.getElementById('board-live');
const REFRESH_MS = 5000;

// The live board. Not while the manager is choosing in it: a refresh would take the select away.
if (board) {
  let pending = null;
  const update = () => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      if (board.contains(document.activeElement) && document.activeElement.matches('select, input')) return;
      refresh(board);
    }, 200);
  };
  new LiveStream('/api/kitchen/tickets/stream', 'ticket', update, {
    onReconnect: update,
    indicator: document.querySelector('[data-live-state]'),
  });
  setInterval(() => { if (document.visibilityState === 'visible') update(); }, REFRESH_MS);

  document.addEventListener('submit', async (event) => {
    const form = event.target.closest('[data-assign]');
    if (!form) return;
    event.preventDefault();
    const result = await api('POST', `/api/delivery/deliveries/${form.dataset.assign}/assign`, {
      courierId: form.elements.courierId.value,
    });
    if (result.ok) toast(T.assigned, 'success');
    else toast(problemMessage(result), 'error');
    document.activeElement?.blur();
    refresh(board);
  });
}

// The menu editor.
function dishBody(form) {
  const value = (name) => form.elements[name]?.value.trim() ?? '';
  const price = Math.round(Number(value('price').replace(',', '.')) * 100);
  const body = {
    name: value('name'),
    description: value('description'),
    category: value('category'),
    price: { amount: price, currency: 'EUR' },
    allergens: [...form.querySelectorAll('input[name="allergens"]:checked')].map((box) => box.value),
  };
  if (value('station')) body.station = value('station');
  if (value('prepMinutes')) body.prepMinutes = Number(value('prepMinutes'));
  return body;
}

document.addEventListener('submit', async (event) => {
  const dishForm = event.target.closest('[data-dish-form], [data-new-dish]');
  if (dishForm) {
    event.preventDefault();
    const id = dishForm.dataset.dishForm;
    const result = id
      ? await api('PATCH', `/api/orders/menu/dishes/${id}`, dishBody(dishForm))
      : await api('POST', '/api/orders/menu/dishes', dishBody(dishForm));
    if (!result.ok) {
      toast(problemMessage(result), 'error');
      return;
    }
    toast(id ? T.dish_saved : T.dish_added, 'success');
    setTimeout(() => location.reload(), 600);
    return;
  }
  const webhookForm = event.target.closest('[data-webhook-form]');
  if (webhookForm) {
    event.preventDefault();
    const body = { url: webhookForm.elements.url.value.trim() };
    if (webhookForm.elements.secret.value.trim()) body.secret = webhookForm.elements.secret.value.trim();
    const result = await api('POST', '/api/delivery/webhooks', body);
    if (!result.ok) {
      toast(problemMessage(result), 'error');
      return;
    }
    // The secret is shown this once: it stays on the page until the manager leaves it.
    const box = document.querySelector('[data-webhook-secret]');
    box.textContent = t('webhook_secret_once', { secret: result.data?.secret || body.secret || '' });
    box.hidden = false;
    webhookForm.reset();
    return;
  }
  const staffForm = event.target.closest('[data-staff-form]');
  if (staffForm) {
    event.preventDefault();
    const value = (name) => staffForm.elements[name].value.trim();
    const body = { name: value('name'), email: value('email'), password: staffForm.elements.password.value, role: value('role') };
    if (value('phone')) body.phone = value('phone');
    const result = await api('POST', '/api/identity/staff', body);
    if (!result.ok) {
      toast(result.status === 409 ? T.email_taken : problemMessage(result), 'error');
      return;
    }
    toast(T.staff_created, 'success');
    staffForm.reset();
    if (body.role === 'courier') setTimeout(() => location.reload(), 2500);
  }
});

document.addEventListener('click', async (event) => {
  const availability = event.target.closest('[data-availability]');
  if (availability) {
    const available = availability.dataset.available === 'true';
    const result = await api('PATCH', `/api/orders/menu/dishes/${availability.dataset.availability}`, { available });
    if (!result.ok) {
      toast(problemMessage(result), 'error');
      return;
    }
    // Drawn from the answer (the dish as it now is), not by reading the menu again, which may
    // lag the change by a moment.
    availability.closest('.editor-row').classList.toggle('unavailable', !available);
    availability.dataset.available = String(!available);
    availability.textContent = available ? T.mark_sold_out : T.put_back;
    availability.className = available ? 'btn btn-quiet' : 'btn btn-secondary';
    toast(T.dish_saved, 'success');
    return;
  }
  const active = event.target.closest('[data-courier-active]');
  if (active) {
    const result = await api('PUT', `/api/delivery/couriers/${active.dataset.courierActive}`, { active: active.dataset.active === 'true' });
    if (!result.ok) toast(problemMessage(result), 'error');
    else location.reload();
    return;
  }
  const webhook = event.target.closest('[data-webhook-delete]');
  if (webhook) {
    if (!(await confirmDialog(T.delete_webhook_confirm))) return;
    const result = await api('DELETE', `/api/delivery/webhooks/${webhook.dataset.webhookDelete}`);
    if (!result.ok) toast(problemMessage(result), 'error');
    else webhook.closest('[data-webhook]')?.remove();
    return;
  }
  const replay = event.target.closest('[data-dead-letter-replay]');
  if (replay && !replay.disabled) {
    replay.disabled = true;
    const result = await api('POST', replay.dataset.deadLetterReplay);
    replay.disabled = false;
    if (!result.ok) toast(deadLetterProblem(result), 'error');
    else deadLetterHandled(replay.closest('[data-dead-letter]'), T.dead_letter_replayed);
    return;
  }
  const discard = event.target.closest('[data-dead-letter-discard]');
  if (discard) {
    if (!(await confirmDialog(T.discard_confirm))) return;
    const result = await api('POST', discard.dataset.deadLetterDiscard);
    if (!result.ok) toast(deadLetterProblem(result), 'error');
    else deadLetterHandled(discard.closest('[data-dead-letter]'), T.dead_letter_discarded);
    return;
  }
  const remove = event.target.closest('[data-courier-remove]');
  if (remove) {
    if (!(await confirmDialog(T.remove_courier_confirm))) return;
    const result = await api('DELETE', `/api/delivery/couriers/${remove.dataset.courierRemove}`);
    if (!result.ok) toast(problemMessage(result), 'error');
    else location.reload();
  }
});
