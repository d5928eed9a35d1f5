/** The few DOM builders the views share: elements, buttons and labelled controls. */

export function element(tag: string, className = '', text = ''): HTMLElement {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

export function button(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const node = document.createElement('button');
  node.type = 'button';
  node.className = 'jp-StreamChat-button';
  node.textContent = label;
  node.title = title;
  node.addEventListener('click', onClick);
  return node;
}

/** `control` inside a label that shows `text`, which is also its accessible name. */
export function labelled(text: string, control: HTMLElement): HTMLElement {
  const label = element('label', 'jp-StreamChat-field');
  control.setAttribute('aria-label', text);
  label.append(element('span', '', text), control);
  return label;
}
