/** Declared judge problems (`sandcell/problems`): load a problem file, judge submissions against it. */
export { judge, Judge, submissionFromFile, SubmissionError, type JudgeOptions, type JudgeReport, type Progress, type Submission, type TestReport } from './judge.js';
export { loadProblem, ROLE_DEFAULTS, SHAPE_FIELDS, type Language, type LoadOptions, type Problem, type Role, type Test, type TrustedProgram } from './load.js';
export { problemSchema } from './schema.js';
export { playInteractive, type Interaction } from './interact.js';
export { interactiveVerdict, runVerdict, sameTokens, trustedVerdict, type Judged, type Verdict } from './verdict.js';
export { DeclarationError, type DeclarationIssue } from '../profiles/index.js';
