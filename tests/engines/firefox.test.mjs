// The browser scenarios (scenarios.mjs) in firefox, through WebDriver.
import { engineSuite } from './scenarios.mjs';

engineSuite('firefox');
