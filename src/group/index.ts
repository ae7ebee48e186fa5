/** Boxes started together and joined by pipes (`sandcell/group`). */
export { runGroup, type GroupBox, type GroupBoxResult, type GroupOptions, type GroupPipe, type GroupResult } from './group.js';
