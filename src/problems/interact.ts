/**
 * An interactive test played: the solution and the interactor started together, each in its own
 * box, the interactor's stdout to the solution's stdin and back, ended by the interactor's end.
 * The local judge and the farm's workers both play a test through here.
 */
import { runGroup, type GroupBox, type GroupBoxResult } from '../group/index.js';
import { interactiveVerdict, interactorWallTime, type Judged } from './verdict.js';

export interface Interaction {
  solution: GroupBoxResult;
  interactor: GroupBoxResult;
  judged: Judged;
}

/** Plays one test; the interactor's wall limit is stretched past the solution's (interactorWallTime). */
export async function playInteractive(solution: GroupBox, interactor: GroupBox): Promise<Interaction> {
  const wallTime = interactorWallTime(interactor.limits?.wallTime, solution.limits?.wallTime);
  const g = await runGroup({
    boxes: { solution, interactor: { ...interactor, limits: { ...interactor.limits, wallTime } } as GroupBox },
    pipes: [
      { from: 'interactor.stdout', to: 'solution.stdin' },
      { from: 'solution.stdout', to: 'interactor.stdin' },
    ],
    endOn: ['interactor'],
  });
  const s = g.boxes.solution as GroupBoxResult;
  const i = g.boxes.interactor as GroupBoxResult;
  return { solution: s, interactor: i, judged: interactiveVerdict(s, i) };
}
