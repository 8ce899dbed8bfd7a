// The browser scenarios (scenarios.mjs) in webkit, through WebDriver.
import { engineSuite } from './scenarios.mjs';

engineSuite('webkit');
