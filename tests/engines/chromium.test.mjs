// The browser scenarios (scenarios.mjs) in chromium, through WebDriver.
import { engineSuite } from './scenarios.mjs';

engineSuite('chromium');
