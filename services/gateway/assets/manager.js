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
  // All the groups, every time: the API replaces the dish's options with the list sent (the
  // ids of the groups and choices that stay keep the carts that refer to them valid).
  body.options = [...form.querySelectorAll('[data-groups] > [data-group]')].map((group) => {
    const field = (root, name) => root.querySelector(`[data-field="${name}"]`);
    const option = {
      name: field(group, 'name').value.trim(),
      minChoices: Number(field(group, 'minChoices').value || 0),
      maxChoices: Number(field(group, 'maxChoices').value || 1),
      choices: [...group.querySelectorAll('[data-choice]')].map((choice) => {
        const delta = Math.round(Number(field(choice, 'priceDelta').value.replace(',', '.') || 0) * 100);
        const picked = { name: field(choice, 'name').value.trim(), priceDelta: { amount: delta, currency: 'EUR' } };
        if (choice.dataset.choiceId) picked.id = choice.dataset.choiceId;
        return picked;
      }),
    };
    if (group.dataset.groupId) option.id = group.dataset.groupId;
    return option;
  });
  return body;
}

/** Numbers the option groups and choices of a dish form, for their labels. */
function numberOptions(form) {
  form.querySelectorAll('[data-groups] > [data-group]').forEach((group, g) => {
    group.querySelector('legend').textContent = `${T.option_group} ${g + 1}`;
    group.querySelectorAll('[data-choice]').forEach((choice, c) => {
      choice.querySelector('[data-field="name"]').previousElementSibling.textContent = `${T.choice_name} ${c + 1}`;
    });
  });
}
for (const form of document.querySelectorAll('[data-dish-form], [data-new-dish]')) numberOptions(form);

function clearDishError(form) {
  const box = form.querySelector('[data-dish-error]');
  if (box) { box.hidden = true; box.textContent = ''; }
  for (const field of form.querySelectorAll('[aria-invalid="true"]')) {
    field.removeAttribute('aria-invalid');
    field.removeAttribute('aria-describedby');
  }
}

/**
 * Shows a refusal next to the dish form, on the field the API names (`price`,
 * `options/1/choices/0/priceDelta`): the field is marked and focused, the message says which.
 */
function showDishError(form, result) {
  const box = form.querySelector('[data-dish-error]');
  const path = String(result.data?.field || '').split('/').filter(Boolean);
  let input = null;
  if (path[0] === 'options') {
    const group = form.querySelectorAll('[data-groups] > [data-group]')[Number(path[1])];
    let root = group;
    let name = path[2];
    if (group && path[2] === 'choices' && path[3] !== undefined) {
      root = group.querySelectorAll('[data-choice]')[Number(path[3])] || group;
      name = path[4];
    }
    input = root?.querySelector(`[data-field="${name}"]`)
      || root?.querySelector('[data-field="name"]')
      || form.querySelector('[data-add-group]');
  } else if (path.length > 0) {
    const named = form.elements[path[0]];
    input = named instanceof Element ? named : null;
  }
  const detail = result.status === 422 || result.status === 400 ? (result.data?.detail || T.error_generic) : problemMessage(result);
  let label = '';
  if (input) {
    const own = input.closest('label')?.querySelector('span')?.textContent
      || (input.id && form.querySelector(`label[for="${input.id}"]`)?.textContent) || '';
    const group = input.closest('[data-group]')?.querySelector('legend')?.textContent;
    label = [group, own].filter(Boolean).join(' › ');
    if (input.matches('input, select, textarea')) {
      input.setAttribute('aria-invalid', 'true');
      if (box) {
        box.id ||= `dish-error-${Math.random().toString(36).slice(2)}`;
        input.setAttribute('aria-describedby', box.id);
      }
    }
  }
  const message = label ? t('dish_field_error', { field: label, detail }) : `${T.dish_not_saved} ${detail}`;
  if (box) {
    box.textContent = message;
    box.hidden = false;
  }
  if (input?.matches('input, select, textarea')) input.focus();
  else box?.scrollIntoView({ block: 'nearest' });
}

document.addEventListener('click', (event) => {
  const form = event.target.closest('[data-dish-form], [data-new-dish]');
  if (!form) return;
  const addGroup = event.target.closest('[data-add-group]');
  if (addGroup) {
    const group = form.querySelector('[data-group-template]').content.firstElementChild.cloneNode(true);
    form.querySelector('[data-groups]').append(group);
    numberOptions(form);
    group.querySelector('[data-field="name"]').focus();
    return;
  }
  const addChoice = event.target.closest('[data-add-choice]');
  if (addChoice) {
    const group = addChoice.closest('[data-group]');
    const choice = form.querySelector('[data-choice-template]').content.firstElementChild.cloneNode(true);
    group.querySelector('[data-choices]').append(choice);
    numberOptions(form);
    choice.querySelector('[data-field="name"]').focus();
    return;
  }
  const removeChoice = event.target.closest('[data-remove-choice]');
  if (removeChoice) {
    const group = removeChoice.closest('[data-group]');
    removeChoice.closest('[data-choice]').remove();
    numberOptions(form);
    group.querySelector('[data-add-choice]').focus();
    return;
  }
  const removeGroup = event.target.closest('[data-remove-group]');
  if (removeGroup) {
    removeGroup.closest('[data-group]').remove();
    numberOptions(form);
    form.querySelector('[data-add-group]').focus();
  }
});

// "Required" and the fewest choices say the same thing: each follows the other.
document.addEventListener('input', (event) => {
  const field = event.target.closest('[data-group] [data-field]');
  if (!field) return;
  const group = field.closest('[data-group]');
  const required = group.querySelector('[data-field="required"]');
  const min = group.querySelector('[data-field="minChoices"]');
  if (field === required) {
    min.value = required.checked ? String(Math.max(1, Number(min.value) || 0)) : '0';
  } else if (field === min) {
    required.checked = Number(min.value) > 0;
  }
});

document.addEventListener('submit', async (event) => {
  const dishForm = event.target.closest('[data-dish-form], [data-new-dish]');
  if (dishForm) {
    event.preventDefault();
    const id = dishForm.dataset.dishForm;
    clearDishError(dishForm);
    const result = id
      ? await api('PATCH', `/api/orders/menu/dishes/${id}`, dishBody(dishForm))
      : await api('POST', '/api/orders/menu/dishes', dishBody(dishForm));
    if (!result.ok) {
      showDishError(dishForm, result);
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
